"""Teleop kind ``scripted``: the simulator's scripted expert drives the arm like an operator.

It is a teleop device so it fits everywhere a human device does (record demonstrations, take
over during a policy run), but its "hand" is :class:`~vla_studio.sim.expert.ScriptedExpert`:
on each episode's instruction it parses the task, then every control tick it proposes the next
end-effector delta from the simulator's privileged state, and reports "task done" (hold) once
the task is accomplished. It only works with the ``sim`` robot.

``get_state()`` shows the expert's progress for display: axes ``progress`` (phase, 0 to 1) and
``gripper`` (its gripper command), one button per phase (the active one is pressed) and ``done``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from vla_studio.core.action_space import EE_DELTA
from vla_studio.core.arbiter import ActionSource, Proposal
from vla_studio.core.config import option
from vla_studio.core.types import Observation, SourceKind
from vla_studio.devices.base import DeviceError, Teleop, TeleopConfig, TeleopContext, TeleopState
from vla_studio.devices.robots.sim import SimRobot
from vla_studio.sim.expert import PHASES, ExpertSettings, ScriptedExpert
from vla_studio.sim.motion import MotionLimits
from vla_studio.sim.tasks import Task, UnknownInstruction, parse_instruction


@dataclass(frozen=True)
class ScriptedTeleopConfig(TeleopConfig):
    """A ``[[teleops]]`` table with ``type = "scripted"``."""

    speed: float = option(0.16, min=0.02, max=0.3, help="cruise speed of the expert's moves, m/s")
    fine_speed: float = option(0.06, min=0.01, max=0.15,
                               help="speed of the final approach, grasp and release, m/s")
    rotation_speed: float = option(0.8, min=0.1, max=1.5, help="turning speed, rad/s")


class ScriptedTeleop(Teleop):
    """The scripted expert of the simulated tabletop, as a teleop device."""

    config_class = ScriptedTeleopConfig
    config: ScriptedTeleopConfig

    def __init__(self, config: ScriptedTeleopConfig | None = None) -> None:
        super().__init__(config or ScriptedTeleopConfig(name="scripted"))
        self._connected = False
        self._lock = threading.Lock()
        self._state = TeleopState(0.0, connected=False)

    @property
    def axis_names(self) -> tuple[str, ...]:
        return ("progress", "gripper")

    @property
    def button_names(self) -> tuple[str, ...]:
        return PHASES

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        # Nothing to open and no reader thread: the expert computes its proposals on the control
        # loop's thread, which owns the simulation it reads.
        self._connected = True
        self.report(None, 1.0)

    def disconnect(self) -> None:
        self._connected = False
        with self._lock:
            self._state = TeleopState(self._state.stamp, self._state.axes, self._state.buttons, False)

    def get_state(self) -> TeleopState:
        with self._lock:
            return self._state

    def make_action_source(self, ctx: TeleopContext) -> "ScriptedSource":
        if not isinstance(ctx.robot, SimRobot):
            raise DeviceError(
                f"the scripted expert drives only the simulated robot (type \"sim\"); this station's "
                f"robot is {type(ctx.robot).__name__}. Use a gamepad, SpaceMouse or keyboard instead")
        if ctx.action_space.kind != EE_DELTA:
            raise DeviceError("the scripted expert sends end-effector deltas; set "
                              "[action_space] kind = \"ee_delta\" in the station profile")
        c = self.config
        settings = ExpertSettings(
            travel=MotionLimits(speed=c.speed, rot_speed=c.rotation_speed),
            fine=MotionLimits(speed=c.fine_speed, accel=0.4, rot_speed=c.rotation_speed))
        return ScriptedSource(ctx.robot, settings, self)

    def report(self, expert: ScriptedExpert | None, gripper: float) -> None:
        """Update the displayed state from the expert (called by its action source)."""
        phase = expert.phase if expert is not None else "done"
        progress = expert.progress if expert is not None else 0.0
        buttons = {p: p == phase for p in PHASES}
        with self._lock:
            self._state = TeleopState(time.monotonic(), {"progress": progress, "gripper": gripper},
                                      buttons, self._connected)


class ScriptedSource(ActionSource):
    """Action source around :class:`ScriptedExpert`; all methods but ``reset`` run on the
    control-loop thread (``reset`` only records the instruction, so it is safe from any thread).

    Args:
        robot: the station's sim robot.
        settings: the expert's speeds.
        device: the teleop device to report progress to (optional).
    """

    kind = SourceKind.TELEOP

    def __init__(self, robot: SimRobot, settings: ExpertSettings | None = None,
                 device: ScriptedTeleop | None = None) -> None:
        self.robot, self.settings, self.device = robot, settings or ExpertSettings(), device
        self._expert: ScriptedExpert | None = None
        self._pending: Task | str | None = None
        self._task: Task | None = None
        self._error = "no instruction yet: start an episode with an instruction"
        self._lock = threading.Lock()
        self._flushed = False

    @property
    def task(self) -> Task | None:
        return self._task

    def reset(self, instruction: str) -> None:
        try:
            task: Task | str = parse_instruction(instruction)
        except UnknownInstruction as exc:
            task = f"the scripted expert cannot do this: {exc}"
        with self._lock:
            self._pending = task

    def flush(self) -> None:
        self._flushed = True  # restart from rest: no carried-over speed after a stop

    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        world = self.robot.world
        if world is None:
            return Proposal(None, now, "the sim robot is not connected")
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None and self._expert is None and self.robot.episode_instruction:
            # Chosen after the episode began: take the task the simulator was prepared for.
            self.reset(self.robot.episode_instruction)
            with self._lock:
                pending, self._pending = self._pending, None
        if isinstance(pending, str):
            self._expert, self._task, self._error = None, None, pending
        elif pending is not None:
            if self._expert is None or self._expert.world is not world:
                self._expert = ScriptedExpert(world, self.settings)
            self._expert.reset(pending)
            self._task, self._flushed = pending, False
        expert = self._expert
        if expert is None:
            return Proposal(None, now, self._error)
        if self._flushed:
            self._flushed = False
            expert.stop_motion()
        action = expert.act(dt)
        if self.device is not None:
            self.device.report(expert, float(action[6]) if action is not None else float(
                np.asarray(obs.state.get("gripper", [1.0])).reshape(-1)[0]))
        if action is None:
            return Proposal(None, now, "task done")
        return Proposal(action, now)
