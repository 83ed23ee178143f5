"""The action source that turns a teleop device into end-effector delta actions.

Engaging ("clutching in") re-references at the robot's current pose. For delta actions the pose
itself needs no bookkeeping (every delta is relative to wherever the arm is), so what must not
jump is the *command*:

* velocity restarts from zero and ramps up (never a step to full speed), whatever the stick or
  SpaceMouse puck is doing at that moment;
* the gripper keeps its current command (the robot's last command, e.g. the policy's closed
  gripper at a DAgger takeover) until the operator presses the gripper button;
* button presses made while disengaged are forgotten.

Engagement starts when a run starts or resumes, when the deadman (the clutch) is pressed, and when
the intervention button is pressed (a takeover from a policy). After the device (re)connects or a
run starts, motion is accepted only once the controls have been seen at rest, so a pad plugged in
with a stick pushed, or a key held while pressing Start, does not move the arm.

Taking over from a policy (DAgger): the proposal says ``takeover`` while the intervention button
is held, or once a motion control is pushed past ``takeover_motion`` of its travel; a takeover by
motion lasts until the controls have rested for ``takeover_release_s``. While the policy drives,
this source keeps following the controls from rest, so at a takeover by motion the command is
whatever the ramp from rest has reached (never a step), and the gripper is re-referenced to the
robot's current command; a takeover by the button re-engages from zero.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from vla_studio.core.action_space import EE_DELTA
from vla_studio.core.arbiter import ActionSource, Proposal
from vla_studio.core.types import Observation, SourceKind
from vla_studio.devices.base import DeviceError, TeleopContext
from vla_studio.devices.teleop.bindings import DEADMAN, GRIPPER, INTERVENTION, ROTATION_TOGGLE
from vla_studio.devices.teleop.mapping import MappedInput

if TYPE_CHECKING:
    from vla_studio.devices.teleop.base import MappedTeleop

log = logging.getLogger(__name__)


class TeleopActionSource(ActionSource):
    """Proposes ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` from a device's latest state.

    Runs on the control-loop thread: it only reads the device's latest immutable state and does
    a few small numpy operations.

    Args:
        device: the teleop device.
        ctx: the station context (action space, control period, robot for the gripper command).

    Raises:
        DeviceError: the robot does not take end-effector delta actions.
    """

    kind = SourceKind.TELEOP

    def __init__(self, device: "MappedTeleop", ctx: TeleopContext) -> None:
        if ctx.action_space.kind != EE_DELTA:
            raise DeviceError(
                f"teleop device '{device.name}' drives end-effector deltas, but this robot takes "
                f"{ctx.action_space.kind!r} actions; use a profile with [action_space] kind = "
                "\"ee_delta\"")
        self.device, self.ctx = device, ctx
        self._last_tick: int | None = None
        self._generation: int | None = None
        self._engaged = False
        self._armed = False
        self._velocity = np.zeros(6)
        self._gripper = 1.0
        self._gripper_follows = False
        self._gripper_held_at_engage = False
        self._seen: dict[str, int] = {}
        self._prev_takeover = False
        self._prev_button = False
        self._prev_deadman = False
        self._motion_until = -math.inf  # a takeover by motion lasts until then (tick time)
        self.engagements = 0
        self.last_reason = ""

    # ----- ActionSource ---------------------------------------------------------------------------
    def propose(self, obs: Observation, now: float, dt: float) -> Proposal:
        state = self.device.get_state()
        mapping = self.device.mapping
        inp = mapping.read(state)
        self._apply_toggles(inp)
        contiguous = self._last_tick is not None and obs.tick == self._last_tick + 1
        self._last_tick = obs.tick
        if state.generation != self._generation:
            self._generation = state.generation
            contiguous = False
        if not contiguous:  # a run started or resumed, or the device was replugged
            self._armed = False
            self._disengage()
            self._motion_until = -math.inf
        if not self._armed and inp.neutral and state.connected:
            self._armed = True  # controls seen at rest: motion may start
        button = INTERVENTION in inp.held
        deadman = DEADMAN in inp.held
        takeover = button or self._motion_takeover(inp, state.connected, deadman, now)
        rising_takeover = takeover and not self._prev_takeover
        rising_button = button and not self._prev_button
        rising_deadman = deadman and not self._prev_deadman
        self._prev_takeover, self._prev_deadman = takeover, deadman
        self._prev_button = button

        label = self.device.device_label
        if not state.connected:
            self._disengage()
            return self._hold(now, f"{label} '{self.device.name}' is not connected", takeover=False)
        if self.device.config.require_deadman and not (deadman or takeover):
            self._disengage()
            return self._hold(state.stamp, f"hold {self._label_of(DEADMAN)} (deadman) to move",
                              takeover)
        if not self._engaged or rising_button or rising_deadman:
            self._engage(obs, inp)
        elif rising_takeover:  # by motion: the ramp from rest goes on; the gripper is the robot's
            self._gripper = self._current_gripper(obs)
            self._gripper_follows = False
            self._gripper_held_at_engage = GRIPPER in inp.held
        if not self._armed:
            return self._hold(state.stamp, f"let go of the {label} controls to start moving",
                              takeover)
        self._update_gripper(inp)
        target = mapping.target_velocity(inp, self.device.tuning)
        self._velocity, mean = mapping.ramp(self._velocity, target, dt)
        action = np.empty(self.ctx.action_space.dim)
        action[:6] = mapping.to_base(mean) * dt
        action[6] = self._gripper
        self.last_reason = ""
        return Proposal(action, state.stamp, takeover=takeover)

    def wants_takeover(self) -> bool:
        """The operator holds the take-over button now (answers a help request while the run
        is paused; motion never resumes a paused run)."""
        state = self.device.get_state()
        return state.connected and INTERVENTION in self.device.mapping.read(state).held

    def reset(self, instruction: str) -> None:
        self._disengage()

    def flush(self) -> None:
        """E-stop or pause: forget the current motion (engaging again ramps from zero)."""
        self._disengage()

    # ----- engagement -----------------------------------------------------------------------------
    @property
    def engaged(self) -> bool:
        return self._engaged

    @property
    def armed(self) -> bool:
        """The device's controls were seen at rest since the run started (or the device
        connected): until then nothing moves, so a stick already deflected never drives."""
        return self._armed

    def _engage(self, obs: Observation, inp: MappedInput) -> None:
        """Re-reference: motion from zero, gripper as currently commanded, old presses dropped."""
        self._engaged = True
        self.engagements += 1
        self._velocity = np.zeros(6)
        self._gripper = self._current_gripper(obs)
        self._gripper_follows = False
        self._gripper_held_at_engage = GRIPPER in inp.held
        self._seen = dict(inp.presses)

    def _current_gripper(self, obs: Observation) -> float:
        """The gripper command the robot has now (read on the loop thread, which owns it)."""
        last = getattr(self.ctx.robot, "last_sent", None)
        return float(self.ctx.action_space.hold_action(obs.state, last)[-1])

    def _motion_takeover(self, inp: MappedInput, connected: bool, deadman: bool,
                         now: float) -> bool:
        """Whether motion takes over (or still holds a takeover by motion) at tick ``now``."""
        cfg = self.device.config
        threshold = cfg.takeover_motion
        allowed = connected and self._armed and (deadman or not cfg.require_deadman)
        if threshold <= 0.0 or not allowed:
            self._motion_until = -math.inf
            return False
        if float(np.max(np.abs(inp.channels))) >= threshold:
            self._motion_until = now + cfg.takeover_release_s
            return True
        if not inp.neutral and self._motion_until > -math.inf:
            self._motion_until = now + cfg.takeover_release_s  # still driving, below threshold
        return now < self._motion_until

    def _disengage(self) -> None:
        self._engaged = False
        self._velocity = np.zeros(6)

    def _hold(self, stamp: float, reason: str, takeover: bool) -> Proposal:
        self.last_reason = reason
        return Proposal(None, stamp, reason, takeover)

    # ----- buttons -------------------------------------------------------------------------------
    def _new_presses(self, inp: MappedInput, function: str) -> int:
        count = inp.presses.get(function, 0)
        n = count - self._seen.get(function, count)
        self._seen[function] = count
        return max(n, 0)

    def _update_gripper(self, inp: MappedInput) -> None:
        n = self._new_presses(inp, GRIPPER)
        if self.device.config.gripper_mode == "toggle":
            if n % 2:
                self._gripper = 0.0 if self._gripper >= 0.5 else 1.0
            return
        held = GRIPPER in inp.held
        if n or held != self._gripper_held_at_engage:
            self._gripper_follows = True
        if self._gripper_follows:
            self._gripper = 0.0 if held else 1.0

    def _apply_toggles(self, inp: MappedInput) -> None:
        if self._new_presses(inp, ROTATION_TOGGLE) % 2:
            tuning = self.device.set_tuning(rotation=not self.device.tuning.rotation)
            log.info("%s: rotation %s", self.device.name, "on" if tuning.rotation else "off")

    def _label_of(self, function: str) -> str:
        button = self.device.mapping.bindings.functions.get(function, "")
        return self.device.control_label(button) if button else function
