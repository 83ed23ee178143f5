"""Names of station commands: what teleop buttons, keyboard shortcuts, menus and the CLI send
through ``Station.run_command`` and features handle with ``Station.on_command``."""

ESTOP = "estop"
RECORD_TOGGLE = "record.toggle"
RECORD_START = "record.start"
RECORD_STOP = "record.stop"  # stop and save
RECORD_DISCARD = "record.discard"
RECORD_RERECORD = "record.rerecord"  # discard the last saved episode and record it again
EPISODE_SUCCESS = "episode.success"
EPISODE_FAILURE = "episode.failure"
TASK_NEXT = "task.next"
RUN_START = "run.start"
RUN_PAUSE = "run.pause"
ROBOT_RECOVER = "robot.recover"  # the robot's own error recovery (Robot.recover)

ALL = (ESTOP, RECORD_TOGGLE, RECORD_START, RECORD_STOP, RECORD_DISCARD, RECORD_RERECORD,
       EPISODE_SUCCESS, EPISODE_FAILURE, TASK_NEXT, RUN_START, RUN_PAUSE, ROBOT_RECOVER)
