"""Robot kind ``franka``: a Franka Research 3 (or Panda) through franky-control (libfranka).

Actions: ``ee_delta`` (an end-effector displacement per control step, base frame) or
``joint_position`` (seven joint targets), each + the gripper opening (1 = open, 0 = closed).
Every tick sends one *asynchronous* franky motion to an absolute target; franky's motion thread
(1 kHz, libfranka) replaces the running motion with it seamlessly (Ruckig re-plans from the
current state), so the control loop never waits for a motion to finish.

```
 control loop (20-30 Hz) ---move(target, asynchronous)---> franky motion thread (1 kHz) --> FCI
   get_observation(): robot.state (q, dq, O_T_EE, O_F_ext_hat_K) + latest gripper reading
 "franka-watchdog" -- no command for watchdog_periods --> stop motion (holds by itself)
 "estop-relay" ------- emergency_hold() ---------------> robot.stop() (libfranka's stop)
 "franka-gripper" ---- grasp()/move(), width reads (slow calls, never on the loop)
```

Faults: a reflex (or any other robot-side error) ends franky's motion with a ControlException.
The driver turns it into :attr:`fault` (one line), raises it once as a DeviceError from the loop
call that met it (the loop latches the e-stop with that message), then holds without moving
until :meth:`recover` (libfranka's automatic error recovery) clears it.

State: ``joint_pos``, ``joint_vel`` (7), ``ee_pos`` (3, m), ``ee_quat`` (4, w x y z),
``ee_wrench`` (6: the estimated external wrench on the end effector in the base frame, N and Nm,
``O_F_ext_hat_K``; zeros on a simulator that does not estimate it), ``gripper`` (opening 0..1)
and ``gripper_width`` (m).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from vla_studio.core.action_space import EE_DELTA, JOINT_POSITION, ActionSpace, JointLimits
from vla_studio.core.config import option
from vla_studio.core.types import Feature
from vla_studio.devices.base import DeviceError, Robot, RobotConfig

from vla_studio_franka.connection import keeps_no_robot, open_robot, release_connection
from vla_studio_franka.faults import active_errors, describe_fault, is_preemption
from vla_studio_franka.gripper import GripperWorker
from vla_studio_franka.targets import (EETargetTracker, clip_joints, quat_xyzw_to_mat,
                                       xyzw_to_wxyz)

log = logging.getLogger(__name__)

# Goals closer than this to the running motion's (or, with none running, to the arm) are no new
# motion (see FrankaRobot._needs_motion): 1 um, 1 urad, 0.2 urad of rotation.
SAME_POSITION_M = 1e-6
SAME_JOINTS_RAD = 1e-6
SAME_ROTATION_COS = 1e-14  # 1 - |cos(angle / 2)| of the quaternions' angle
RECOVERY_SETTLE_S = 1.0  # longest wait for the state to show a recovery (see recover())
PLANNER_FAILED = "Motion planner failed"  # franky's MotionPlannerException (not exported)
PLANNER_WINDOW_S = 10.0  # see FrankaRobot._planner_gave_up
JOINT_NAMES = tuple(f"fr3_joint{i}" for i in range(1, 8))
# From Franka's datasheets. Top speeds are those franky plans with (the Panda's, below the
# FR3's own 2.62-5.26 rad/s): the safety filter never asks for more than franky will do.
_SPEEDS = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
MODEL_LIMITS = {
    "fr3": JointLimits(JOINT_NAMES,
                       (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159),
                       (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159), _SPEEDS),
    "panda": JointLimits(JOINT_NAMES,
                         (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
                         (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973), _SPEEDS),
}


@dataclass(frozen=True)
class FrankaConfig(RobotConfig):
    """The ``[robot]`` table of a station with ``type = "franka"``."""

    hostname: str = option("172.16.0.2", help="the robot's FCI address (franky-sim: 127.0.0.1)")
    model: str = option("fr3", choices=("fr3", "panda"), help="arm model (joint limits)")
    realtime: str = option("enforce", choices=("enforce", "ignore"),
                           help="libfranka's realtime check: 'ignore' only without a PREEMPT_RT "
                                "kernel (a simulator, a desk test)")
    relative_dynamics_factor: float = option(
        0.15, min=0.01, max=1.0, help="fraction of the arm's velocity/acceleration/jerk limits")
    max_lead_m: float = option(0.03, min=0.001, max=0.2,
                               help="farthest the Cartesian target may lead the arm, metres")
    max_lead_rad: float = option(0.2, min=0.01, max=1.0,
                                 help="largest rotation the target may lead the arm by, rad")
    connect_timeout_s: float = option(10.0, min=1.0, max=120.0,
                                      help="longest wait for the robot to answer when connecting")
    rest_joint_speed: float = option(
        0.05, min=0.001, max=1.0,
        help="a new motion starts only once every joint is slower than this, rad/s")
    planner_restarts: int = option(
        1, min=0, max=5, help="isolated planner failures (no robot error) per 10 s that stop "
                              "the arm and restart from rest instead of faulting (0 = none)")
    watchdog_periods: float = option(3.0, min=1.5, max=100.0,
                                     help="hold when no command came for this many periods")
    torque_threshold: float = option(20.0, min=1.0, max=100.0,
                                     help="collision torque threshold, Nm (all joints)")
    force_threshold: float = option(30.0, min=1.0, max=200.0,
                                    help="collision force threshold, N (all axes)")
    gripper: bool = option(True, help="a Franka Hand is attached")
    gripper_homing: bool = option(False, help="home the gripper when connecting (~1 s)")
    gripper_speed: float = option(0.05, min=0.001, max=0.2, help="finger speed, m/s")
    gripper_force: float = option(20.0, min=1.0, max=70.0, help="grasp force, N")
    gripper_deadband: float = option(0.05, min=0.0, max=0.5,
                                     help="opening change that sends a new gripper command")


class FrankaRobot(Robot):
    """A Franka arm (and Hand) driven through franky's asynchronous motions.

    Attributes:
        watchdog_holds: times the driver's watchdog held the arm because commands stopped.
        robot_time_s: the robot's own clock (``RobotState.time``) at the last observation.
        planner_failures_absorbed: planner failures absorbed (see ``_planner_gave_up``).
        rest_waits: commands held because the arm was still coming to rest from a stop (a
            motion that follows a stop starts from rest; see ``_wait_for_rest``).
        emergency_stops: times libfranka's stop was sent (emergency holds, and the second stop
            of a tick that raced one).
        emergency_stop_sent: host monotonic time the last of those stops was sent.
        last_emergency_stop: host monotonic time the last of those stops returned.
    """

    config_class: ClassVar[type[RobotConfig]] = FrankaConfig
    config: FrankaConfig
    supported_action_kinds = (EE_DELTA, JOINT_POSITION)
    simulated = False  # franky-sim speaks the real protocol: the driver treats it as real

    def __init__(self, config: FrankaConfig | None = None, action_kind: str = EE_DELTA) -> None:
        super().__init__(config or FrankaConfig(name="franka"), action_kind)
        c = self.config
        self._franky: Any = None  # the module, imported at connect
        self._robot: Any = None
        self._gripper: GripperWorker | None = None
        self._ee = EETargetTracker(c.max_lead_m, c.max_lead_rad)
        self._lock = threading.Lock()  # loop thread vs watchdog; never taken by emergency_hold
        self._moving = False  # a motion of ours may be running (a hold/stop clears it)
        self._goal: np.ndarray | None = None  # where that motion goes
        self._last_command = 0.0
        # measured (ee_pos, ee_mat, ee_quat_xyzw) of the last observation
        self._meas: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._q_meas: np.ndarray | None = None  # measured joints of the last observation
        self._at_rest = False  # the last observation: no motion to finish, every joint still
        self._rest_ref: tuple[np.ndarray, float] | None = None  # (q, robot time s) to compare
        self._stopped = True  # a stop, a hold or a fault ended our last motion (or none ran)
        self._fault = ""
        self._fault_told = False
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self.watchdog_holds = 0
        self.robot_time_s = 0.0  # the robot's own clock (RobotState.time) at the last observation
        self.rest_waits = 0
        self.planner_failures_absorbed = 0
        self._planner_failures: list[float] = []
        self.emergency_stops = 0
        self.emergency_stop_sent = 0.0  # host monotonic time libfranka's last stop was sent
        self.last_emergency_stop = 0.0  # host monotonic time libfranka's last stop returned

    # ----- schema (before connect) ---------------------------------------------------------------
    @property
    def action_space(self) -> ActionSpace:
        if self.action_kind == JOINT_POSITION:
            return ActionSpace.joint_position(JOINT_NAMES)
        return ActionSpace.ee_delta()

    @property
    def joint_limits(self) -> JointLimits:
        return MODEL_LIMITS[self.config.model]

    @property
    def observation_features(self) -> dict[str, Feature]:
        features = {
            "joint_pos": Feature("float32", (7,), JOINT_NAMES, "rad"),
            "joint_vel": Feature("float32", (7,), JOINT_NAMES, "rad/s"),
            "ee_pos": Feature("float32", (3,), ("x", "y", "z"), "m"),
            "ee_quat": Feature("float32", (4,), ("w", "x", "y", "z")),
            "ee_wrench": Feature("float32", (6,), ("fx", "fy", "fz", "tx", "ty", "tz"), "N, Nm"),
        }
        if self.config.gripper:
            features["gripper"] = Feature("float32", (1,), ("opening",))
            features["gripper_width"] = Feature("float32", (1,), ("width",), "m")
        return features

    @property
    def fault(self) -> str:
        return self._fault

    # ----- lifecycle -----------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._robot is not None

    @keeps_no_robot
    def connect(self) -> None:
        """Connect to the arm (and Hand), set its collision behaviour, start the watchdog."""
        if self._robot is not None:
            return
        c = self.config
        try:
            import franky
        except ImportError as exc:
            raise DeviceError(f"robot {self.name!r}: franky is not installed ({exc}); "
                              "pip install franky-control") from None
        realtime = (franky.RealtimeConfig.Ignore if c.realtime == "ignore"
                    else franky.RealtimeConfig.Enforce)
        try:
            robot = open_robot(lambda: franky.Robot(
                c.hostname, relative_dynamics_factor=c.relative_dynamics_factor,
                realtime_config=realtime), c.connect_timeout_s)
            robot.set_collision_behavior(c.torque_threshold, c.force_threshold)
        except franky.Exception as exc:
            raise DeviceError(f"robot {self.name!r}: cannot connect to the Franka at "
                              f"{c.hostname}: {exc}. Check the address, that FCI is enabled "
                              "in Desk and the brakes are open (a simulator: start "
                              "`franky-sim -s mujoco`, hostname = \"127.0.0.1\")") from None
        except TimeoutError:
            raise DeviceError(f"robot {self.name!r}: the Franka at {c.hostname} took the "
                              f"connection but did not answer within {c.connect_timeout_s:g} "
                              "s: another client probably holds its FCI connection (another "
                              "VLA Studio or libfranka program); close it and connect again"
                              ) from None
        self._franky, self._robot = franky, robot
        try:
            if c.gripper:
                worker = GripperWorker(lambda: franky.Gripper(c.hostname), c.gripper_speed,
                                       c.gripper_force, c.gripper_deadband)
                worker.start(home=c.gripper_homing)
                self._gripper = worker
        except Exception as exc:
            self._robot = None
            raise DeviceError(f"robot {self.name!r}: the Franka Hand at {c.hostname} does not "
                              f"answer: {exc}. Set gripper = false when none is attached"
                              ) from None
        if robot.has_errors:
            self._set_fault("the robot reports errors", active_errors(robot.state.current_errors))
        self._watchdog_stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="franka-watchdog", daemon=True)
        self._watchdog.start()
        log.info("Franka %r connected at %s (%s, %s actions)", self.name, c.hostname, c.model,
                 self.action_kind)

    def disconnect(self) -> None:
        """Hold, stop the watchdog and gripper threads, drop the connection. Safe twice."""
        self._watchdog_stop.set()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.join(timeout=2.0)
        robot = self._robot
        if robot is not None:
            try:
                robot.stop()
            except Exception as exc:
                log.warning("Franka %r: stopping at disconnect failed: %s", self.name, str(exc))
        gripper, self._gripper = self._gripper, None
        if gripper is not None:
            gripper.stop()
        self._robot = None
        if robot is not None:
            release_connection(robot, self.name)

    def _require(self) -> Any:
        robot = self._robot
        if robot is None:
            raise DeviceError(f"robot {self.name!r} is not connected")
        return robot

    # ----- loop thread ---------------------------------------------------------------------------
    @keeps_no_robot
    def get_observation(self) -> dict[str, np.ndarray]:
        robot = self._require()
        franky = self._franky
        try:
            state = robot.state
        except franky.Exception as exc:
            raise DeviceError(f"lost the Franka at {self.config.hostname}: {exc}") from None
        if not self._fault and state.robot_mode == franky.RobotMode.Reflex:
            self._set_fault("", active_errors(state.last_motion_errors)
                            or active_errors(state.current_errors))
        if self._moving and not self._fault:
            with self._lock:
                self._poll()
        dq = np.asarray(state.dq, dtype=np.float64)
        q = np.asarray(state.q, dtype=np.float64)
        self.robot_time_s = float(state.time.to_sec())
        self._update_rest(state.robot_mode == franky.RobotMode.Idle, q, self.robot_time_s)
        pose = state.O_T_EE
        pos = np.asarray(pose.translation, dtype=np.float64).reshape(3)
        quat = np.asarray(pose.quaternion, dtype=np.float64).reshape(4)
        self._meas = (pos, quat_xyzw_to_mat(quat), quat)
        self._q_meas = q
        obs = {
            "joint_pos": self._q_meas.astype(np.float32),
            "joint_vel": dq.astype(np.float32),
            "ee_pos": pos.astype(np.float32),
            "ee_quat": xyzw_to_wxyz(quat).astype(np.float32),
            "ee_wrench": np.asarray(state.O_F_ext_hat_K, dtype=np.float32).reshape(6),
        }
        reading = self._gripper.latest() if self._gripper is not None else None
        if reading is not None:
            obs["gripper"] = np.array([reading.opening], np.float32)
            obs["gripper_width"] = np.array([reading.width], np.float32)
        return obs

    @keeps_no_robot
    def _send(self, action: np.ndarray) -> np.ndarray:
        robot = self._require()
        if self._fault:  # never let a command vanish silently: the robot cannot move now
            self._fault_told = True
            raise DeviceError(self._fault)
        a = np.asarray(action, dtype=np.float64)
        sent = a.copy()
        if self.emergency_held:  # the base class made this a hold: start no motion at all
            self._ee.reset()
            return sent
        if not self._moving and self._stopped and not self._at_rest:
            return self._wait_for_rest(a, sent)
        franky = self._franky
        with self._lock:
            if self.action_kind == JOINT_POSITION:
                lim = self.joint_limits
                goal = clip_joints(a[:7], lim.lower, lim.upper)
                sent[:7] = goal
                motion = franky.JointMotion(goal, franky.ReferenceType.Absolute)
            else:
                goal, motion = self._cartesian_motion(a[:6], sent)
            if self._needs_motion(goal) and self._move(robot, motion):
                self._moving, self._stopped, self._goal = True, False, goal
            self._last_command = time.monotonic()
        if self.emergency_held:
            # The relay's stop may have gone out between the check above and this move: stop
            # again, so a tick that was past its e-stop check cannot leave the arm moving.
            self._stop_now(robot)
        if self._gripper is not None:
            self._gripper.command(float(a[-1]))
        return sent

    @keeps_no_robot
    def hold(self, state: Mapping[str, np.ndarray]) -> np.ndarray:
        """Decelerate to a standstill (franky's stop motion) and leave the gripper alone.

        ``state`` may be empty (the loop holds with the last valid state it has, ``{}`` before
        the first one): joint targets then hold the joints this driver measured last."""
        if "joint_pos" not in state and self._q_meas is not None:
            state = {**state, "joint_pos": self._q_meas}
        action = self.action_space.hold_action(state, self._last_sent)
        self._last_sent = action
        self._ee.reset()
        robot = self._require()
        if self._fault:
            if not self._fault_told:
                self._fault_told = True
                raise DeviceError(self._fault)
            return action
        if self._moving and not self.emergency_held:
            with self._lock:
                self._hold_motion(robot)
        return action

    def _update_rest(self, idle: bool, q: np.ndarray, t_robot: float) -> None:
        """Judge rest from the joints' travel between observations over the robot's own clock
        (``RobotState.time``): a simulator's reported ``dq`` can stay stale while its arm is
        still (franky-sim's did), and the host's clock says nothing about how far the robot's
        time moved on."""
        ref = self._rest_ref
        if ref is None or t_robot < ref[1]:
            self._rest_ref, self._at_rest = (q, t_robot), False
            return
        dt = t_robot - ref[1]
        if dt < 0.005:  # the same or the next state packet: keep the last verdict
            self._at_rest = self._at_rest and idle
            return
        speed = float(np.abs(q - ref[0]).max()) / dt
        self._at_rest = idle and speed < self.config.rest_joint_speed
        self._rest_ref = (q, t_robot)

    def _wait_for_rest(self, action: np.ndarray, sent: np.ndarray) -> np.ndarray:
        """Hold instead of starting a motion: the arm is still coming to rest from a stop.

        franky plans a new motion from the robot's commanded state; right after a stop, a
        reflex or a recovery that state is still changing and its planner can refuse it
        ("Motion planner failed", Ruckig -101/-110/-111: seen after recoveries on franky-sim).
        A motion that follows a stop therefore starts from rest only: once an observation
        finds the robot idle with every joint slower than ``rest_joint_speed`` (see
        :meth:`_update_rest`). Until then the command is a hold (what was sent says so); the
        gripper still gets its command.
        """
        self._ee.reset()
        self.rest_waits += 1
        if self.action_kind == JOINT_POSITION and self._q_meas is not None:
            sent[:7] = self._q_meas
        else:
            sent[:-1] = 0.0
        if self._gripper is not None:
            self._gripper.command(float(action[-1]))
        return sent

    # ----- emergency hold (the e-stop relay's thread) --------------------------------------------
    @keeps_no_robot
    def _emergency_hold(self) -> None:
        """libfranka's stop, straight away: it preempts franky's running motion (sent on the
        robot's command connection; takes no driver lock, waits for no loop)."""
        robot = self._robot
        if robot is not None:
            self._stop_now(robot)

    def _release_emergency_hold(self) -> None:
        self._ee.reset()
        self._moving = False

    # ----- recovery ------------------------------------------------------------------------------
    @keeps_no_robot
    def recover(self) -> None:
        """libfranka's automatic error recovery; clears :attr:`fault` when it succeeds."""
        robot = self._require()
        franky = self._franky
        if not self._fault and not robot.has_errors:
            return
        try:
            # Its result is franky's reading of the state right after the robot's answer,
            # which can still be the packet before it: judged below on the states that follow.
            robot.recover_from_errors()
        except franky.Exception as exc:
            raise DeviceError(f"automatic error recovery failed: {exc}; recover the robot in "
                              "Desk (or with its pilot buttons)") from None
        errors = self._errors_after_recovery(robot)
        if errors:
            raise DeviceError(f"the robot still reports errors after recovery "
                              f"({', '.join(errors)}); recover it in Desk (or with its pilot "
                              "buttons)")
        with self._lock:
            self._moving = False
            self._ee.reset()
            try:
                robot.poll_motion()  # collect the exception of the aborted motion, if left
            except Exception:  # whatever ended it was the fault being cleared now
                pass
        log.info("Franka %r recovered from: %s", self.name, self._fault)
        self._fault, self._fault_told = "", False

    def _errors_after_recovery(self, robot: Any) -> list[str]:
        """Wait (at most ``RECOVERY_SETTLE_S``) until the robot's state stops reporting errors.

        libfranka's recovery returns when the robot acknowledged it; the state packets that
        say so follow (franky-sim's next ones still showed the reflex): judging the first state
        read afterwards would fail a recovery that worked. Returns the errors still reported.
        """
        franky = self._franky
        deadline = time.monotonic() + RECOVERY_SETTLE_S
        while True:
            state = robot.state
            errors = active_errors(state.current_errors)
            if not errors and state.robot_mode != franky.RobotMode.Reflex:
                return []
            if time.monotonic() >= deadline:
                return errors or [f"robot mode {state.robot_mode.name}"]
            time.sleep(0.002)

    # ----- internals -----------------------------------------------------------------------------
    def _needs_motion(self, goal: np.ndarray) -> bool:
        """Whether ``goal`` (joints, or position + xyzw quaternion) asks for a new motion.

        Not when the running motion already heads there, nor, with none running, when the arm
        is there already: franky's planner has nothing to plan then, and it fails on exactly
        that (Ruckig -111 for a target equal to the robot's pose, seen on franky-sim at rest).
        """
        if self._moving:
            ref = self._goal
        elif self.action_kind == JOINT_POSITION:
            ref = self._q_meas
        else:
            ref = None if self._meas is None else np.concatenate([self._meas[0], self._meas[2]])
        if ref is None or ref.shape != goal.shape:
            return True
        if self.action_kind == JOINT_POSITION:
            return float(np.abs(goal - ref).max()) > SAME_JOINTS_RAD
        return (float(np.abs(goal[:3] - ref[:3]).max()) > SAME_POSITION_M
                or 1.0 - abs(float(np.dot(goal[3:], ref[3:]))) > SAME_ROTATION_COS)

    def _cartesian_motion(self, delta: np.ndarray, sent: np.ndarray) -> tuple[np.ndarray, Any]:
        """The goal (position + xyzw quaternion) and motion to the tracker's next target
        (``_lock`` held); ``sent[:6]`` gets the delta the target really moved by."""
        if self._meas is None:
            raise DeviceError("the Franka's pose is not known yet (no observation)")
        franky = self._franky
        pos, mat, quat = self._meas
        target, applied = self._ee.step(delta, pos, mat)
        sent[:6] = applied
        # q and -q are the same rotation, but a planner interpolating from the measured
        # quaternion towards -q turns the long way round: stay in the measured hemisphere.
        target_quat = target.quat_xyzw
        if float(np.dot(target_quat, quat)) < 0.0:
            target_quat = -target_quat
        goal = np.concatenate([target.pos, target_quat])
        return goal, franky.CartesianMotion(
            franky.RobotPose(franky.Affine(target.pos, target_quat)),
            franky.ReferenceType.Absolute)

    def _move(self, robot: Any, motion: Any, tell: bool = True) -> bool:
        """``robot.move(motion, asynchronous=True)`` (``_lock`` held); whether it started.

        A fault it meets is raised as DeviceError; ``tell`` says whether that raise reaches the
        control loop (False from the watchdog: the loop's next call raises it instead).

        A motion that ended by preemption (our own stop) is no fault: the new motion simply
        starts. One that ended because franky's planner gave up is absorbed when
        :meth:`_planner_gave_up` allows it (False: no motion now, the next starts from rest).
        """
        franky = self._franky
        try:
            robot.move(motion, asynchronous=True)
            return True
        except franky.ControlException as exc:
            if not is_preemption(str(exc), robot.has_errors):
                self._motion_failed(robot, str(exc))
                self._fault_told = self._fault_told or tell
                raise DeviceError(self._fault) from None
        except Exception as exc:  # the stored failure of the motion this one replaces
            if self._planner_gave_up(robot, str(exc)):
                return False
            self._motion_failed(robot, str(exc))
            self._fault_told = self._fault_told or tell
            raise DeviceError(self._fault) from None
        robot.move(motion, asynchronous=True)
        return True

    def _poll(self) -> None:
        """Surface a ControlException of the running motion (``_lock`` held)."""
        robot, franky = self._robot, self._franky
        try:
            if not robot.poll_motion():
                self._moving = False
        except franky.ControlException as exc:
            self._moving = False
            if not is_preemption(str(exc), robot.has_errors):
                self._motion_failed(robot, str(exc))
        except Exception as exc:  # e.g. "Motion planner failed" right after a reflex
            # Whatever ended the running motion, the arm is not following our targets any more:
            # a fault the operator clears with Recover robot (unless the planner's failure is
            # absorbed, see _planner_gave_up), never a dead state reading.
            self._moving = False
            if not self._planner_gave_up(robot, str(exc)):
                self._motion_failed(robot, str(exc))

    def _planner_gave_up(self, robot: Any, message: str) -> bool:
        """Absorb a failure of franky's motion planner when it is an isolated one.

        franky plans each motion (Ruckig) from the commanded state; when its 1 kHz thread
        misses state packets it extrapolates over the gap, and on a loaded host without a
        realtime kernel the planner can then give up ("Motion planner failed with error code
        -110"; franky-sim on a busy 2-core machine: about once a minute of driving).
        libfranka then ends the motion and the robot stops by itself; no robot error is
        active. Up to ``planner_restarts`` such failures within ``PLANNER_WINDOW_S`` are
        absorbed: logged and counted, the arm comes to rest and the next command starts a new
        motion from rest (see :meth:`_wait_for_rest`). One more, or any failure while the
        robot reports an error, is a fault the operator clears (Robot > Recover robot).
        """
        if PLANNER_FAILED not in message or robot.has_errors:
            return False
        now = time.monotonic()
        recent = [t for t in self._planner_failures if now - t < PLANNER_WINDOW_S]
        if len(recent) >= self.config.planner_restarts:
            self._planner_failures = recent
            return False
        self._planner_failures = [*recent, now]
        self.planner_failures_absorbed += 1
        self._moving, self._stopped = False, True
        self._ee.reset()
        log.warning("Franka %r: franky's motion planner gave up (%s); the arm stops and the "
                    "next command starts again from rest (%d of %d allowed in %.0f s)",
                    self.name, message.strip(), len(recent) + 1, self.config.planner_restarts,
                    PLANNER_WINDOW_S)
        return True

    def _motion_failed(self, robot: Any, message: str) -> None:
        """A running motion ended by an error: the fault, and the state it met (in the log)."""
        self._set_fault(message, self._errors(robot))
        try:
            state = robot.state
            log.error("Franka %r: the failed motion met: mode %s, fastest joint %.3f rad/s, "
                      "command success rate %.2f", self.name, state.robot_mode,
                      float(np.abs(np.asarray(state.dq)).max()),
                      float(state.control_command_success_rate))
        except Exception as exc:
            log.debug("reading the state after a failed motion failed: %s", str(exc))

    def _hold_motion(self, robot: Any, from_loop: bool = True) -> None:
        """A stop motion of the running motion's kind (``_lock`` held). A fault it meets is
        raised to the loop (``from_loop``), or left for the loop's next call (the watchdog)."""
        franky = self._franky
        stop = (franky.JointStopMotion() if self.action_kind == JOINT_POSITION
                else franky.CartesianStopMotion())
        self._stopped = True
        try:
            self._move(robot, stop, tell=from_loop)
        finally:
            self._moving = False

    def _stop_now(self, robot: Any) -> None:
        self._stopped = True
        self.emergency_stop_sent = time.monotonic()
        try:
            robot.stop()
        finally:
            self.emergency_stops += 1
            self.last_emergency_stop = time.monotonic()

    def _errors(self, robot: Any) -> list[str]:
        try:
            state = robot.state
        except Exception:
            return []
        return active_errors(state.last_motion_errors) or active_errors(state.current_errors)

    def _set_fault(self, message: str, errors: list[str]) -> None:
        """Record a fault; the first one stands (and is told once) until :meth:`recover`:
        the loop and the watchdog may both meet the same reflex."""
        if self._fault:
            return
        self._fault = describe_fault(message, errors)
        self._fault_told = False
        self._stopped = True
        self._moving = False
        self._ee.reset()
        log.error("Franka %r: %s", self.name, self._fault)

    def _watch(self) -> None:
        """Hold when commands stop arriving while a motion of ours runs (VLA Studio's loop
        stalled): franky would otherwise finish the last target and stay, but never keep on."""
        period = self.control_period_s
        limit = self.config.watchdog_periods * period
        while not self._watchdog_stop.wait(period / 2.0):
            if not self._moving or self._fault or time.monotonic() - self._last_command <= limit:
                continue
            if not self._lock.acquire(timeout=period):
                continue
            try:
                robot = self._robot
                if robot is None or not self._moving:
                    continue
                if time.monotonic() - self._last_command > limit:
                    log.warning("Franka %r: no command for %.0f ms; holding", self.name,
                                (time.monotonic() - self._last_command) * 1000.0)
                    self.watchdog_holds += 1
                    self._hold_motion(robot, from_loop=False)
            except Exception as exc:
                log.error("Franka %r: the watchdog's hold failed: %s", self.name, str(exc))
            finally:
                self._lock.release()
