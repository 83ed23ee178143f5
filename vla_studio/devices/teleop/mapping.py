"""Raw device controls -> end-effector velocity -> per-step delta, rate-independently.

```
 raw state (axes, buttons)                       operator frame            robot base frame
   --calibrate (centre, deadzone, expo, scale, invert)-->  channels in [-1, 1]
   --rotation off? dominant axis? clip |xyz|, |rpy| to 1--> x speed, precision, tuning
   --> target velocity (m/s, rad/s) --ramp (acceleration limit, braking immediate)-->
   --> velocity --rotate by frame_yaw--> base-frame velocity --x dt--> delta per control step
```
Speeds are physical (m/s, rad/s) and every step's delta is ``velocity * dt``, so holding a stick
for one second moves the arm the same distance at 15 Hz and at 100 Hz. The ramp limits how fast
the commanded speed can *grow* (full speed after ``ramp_s``), so engaging, taking over from a
policy or plugging a pad in never steps the command; letting go stops at once.

Everything here is pure (no threads, no I/O) and cheap enough for the control-loop thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping

import numpy as np

from vla_studio.core.config import option
from vla_studio.devices.base import TeleopConfig, TeleopState
from vla_studio.devices.teleop.bindings import (CHANNELS, PRECISION, AxisCalibration, Bindings)


@dataclass(frozen=True)
class MappedTeleopConfig(TeleopConfig):
    """Mapping settings every teleop device kind accepts in its ``[[teleops]]`` table."""

    linear_speed: float = option(0.15, min=0.0, max=2.0,
                                 help="end-effector speed at full deflection, m/s")
    angular_speed: float = option(0.8, min=0.0, max=6.0,
                                  help="end-effector turn rate at full deflection, rad/s")
    deadzone: float = option(0.1, min=0.0, max=0.95,
                             help="readings closer than this to the centre count as zero")
    expo: float = option(1.0, min=1.0, max=5.0,
                         help="response curve: 1 = linear, 2 = finer control near the centre")
    precision_scale: float = option(0.25, min=0.01, max=1.0,
                                    help="speed factor while the precision button is held")
    ramp_s: float = option(0.15, min=0.0, max=2.0,
                           help="seconds from rest to full speed (braking is immediate)")
    frame_yaw_deg: float = option(0.0, min=-360.0, max=360.0,
                                  help="operator frame yaw in the robot base frame: 0 = the "
                                       "operator looks along the robot's +x, 180 = faces it")
    rotation: bool = option(True, help="rotation channels enabled at start")
    dominant_axis: bool = option(False, help="move along the strongest channel only")
    gripper_mode: Literal["toggle", "hold"] = option(
        "toggle", help="toggle: each press opens/closes; hold: closed while held")
    takeover_motion: float = option(
        0.5, min=0.0, max=1.0,
        help="during a policy run, moving a control past this fraction of its travel takes "
             "over (as holding the take-over button does); 0: only the button takes over")
    takeover_release_s: float = option(
        0.5, min=0.0, max=10.0,
        help="a take-over by motion hands back to the policy once the controls have rested "
             "this long")
    require_deadman: bool | None = option(
        None, help="move only while the deadman button is held; default: on for gamepads and "
                   "SpaceMice when the robot is not simulated, off otherwise")
    motion: dict[str, str] = option(default_factory=dict,
                                    help="channel -> control, e.g. x = \"-left_y\", z = \"r/f\"")
    buttons: dict[str, str] = option(default_factory=dict,
                                     help="function -> button, e.g. gripper = \"a\"")
    calibration: dict[str, AxisCalibration] = option(
        default_factory=dict, help="per raw axis: center, deadzone, scale, invert, expo")


@dataclass(frozen=True)
class Tuning:
    """Settings the operator changes while driving (sensitivity sliders, rotation switch).

    Attributes:
        linear: factor on ``linear_speed``.
        angular: factor on ``angular_speed``.
        rotation: rotation channels enabled.
    """

    linear: float = 1.0
    angular: float = 1.0
    rotation: bool = True


@dataclass(frozen=True)
class MappedInput:
    """A device state seen through the bindings.

    Attributes:
        channels: operator-frame command per channel (x, y, z, roll, pitch, yaw) in [-1, 1].
        held: functions whose button is down now.
        presses: function -> how many times its button was pressed since the device was made.
    """

    channels: np.ndarray
    held: frozenset[str] = frozenset()
    presses: Mapping[str, int] = field(default_factory=dict)

    @property
    def neutral(self) -> bool:
        """No motion channel is commanded (sticks centred, no motion key held)."""
        return not np.any(self.channels)


def calibrate(value: float, cal: AxisCalibration, deadzone: float, expo: float) -> float:
    """One raw axis reading -> a command in [-1, 1] (centre, deadzone, curve, scale, invert).

    The deadzone is rescaled so the command grows continuously from 0 at its edge.
    """
    x = value - cal.center
    dz = deadzone if cal.deadzone is None else cal.deadzone
    mag = abs(x)
    if mag <= dz or not math.isfinite(x):
        return 0.0
    mag = min(1.0, (mag - dz) / (1.0 - dz))
    mag **= expo if cal.expo is None else cal.expo
    out = math.copysign(mag, x) * cal.scale * (-1.0 if cal.invert else 1.0)
    return max(-1.0, min(1.0, out))


class TeleopMapping:
    """The mapping of one device: bindings + calibration + speeds.

    Args:
        config: the device's mapping settings.
        bindings: resolved bindings (defaults plus profile overrides).
    """

    def __init__(self, config: MappedTeleopConfig, bindings: Bindings) -> None:
        self.config = config
        self.bindings = bindings
        self._default_cal = AxisCalibration()
        yaw = math.radians(config.frame_yaw_deg)
        c, s = math.cos(yaw), math.sin(yaw)
        self._frame = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        self._speeds = np.array([config.linear_speed] * 3 + [config.angular_speed] * 3)

    def read(self, state: TeleopState) -> MappedInput:
        """Apply bindings and calibration to a raw state (missing controls read as rest)."""
        cfg, axes, buttons = self.config, state.axes, state.buttons
        channels = np.zeros(len(CHANNELS))
        for i, name in enumerate(CHANNELS):
            b = self.bindings.motion[name]
            if b.axis:
                raw = axes.get(b.axis)
                if raw is not None:
                    cal = cfg.calibration.get(b.axis, self._default_cal)
                    channels[i] = b.sign * calibrate(float(raw), cal, cfg.deadzone, cfg.expo)
            elif b.plus or b.minus:
                channels[i] = float(bool(buttons.get(b.plus))) - float(bool(buttons.get(b.minus)))
        held = frozenset(f for f, b in self.bindings.functions.items() if buttons.get(b))
        presses = getattr(state, "presses", {})
        counts = {f: int(presses.get(b, 0)) for f, b in self.bindings.functions.items()}
        return MappedInput(channels, held, counts)

    def target_velocity(self, inp: MappedInput, tuning: Tuning) -> np.ndarray:
        """Operator-frame velocity the input asks for: ``[vx, vy, vz, wx, wy, wz]`` (m/s, rad/s)."""
        c = inp.channels.astype(np.float64, copy=True)
        if not tuning.rotation:
            c[3:] = 0.0
        if self.config.dominant_axis and np.any(c):
            keep = int(np.argmax(np.abs(c)))
            c[np.arange(6) != keep] = 0.0
        for part in (slice(0, 3), slice(3, 6)):  # diagonal input is not faster than straight
            n = float(np.linalg.norm(c[part]))
            if n > 1.0:
                c[part] /= n
        factor = self.config.precision_scale if PRECISION in inp.held else 1.0
        c[:3] *= self.config.linear_speed * tuning.linear * factor
        c[3:] *= self.config.angular_speed * tuning.angular * factor
        return c

    def ramp(self, current: np.ndarray, target: np.ndarray,
             dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Move ``current`` towards ``target`` under the acceleration limit.

        Returns ``(velocity, mean)``: the velocity at the end of the step and the mean velocity
        over it (what the step's delta is made of, so a ramp covers the same distance at any
        rate). Slowing down, stopping and reversing take effect at once.
        """
        cur = np.where(current * target < 0.0, 0.0, current)  # reversing: brake first
        if self.config.ramp_s <= 0.0:
            return target.copy(), target.copy()
        step = self._speeds / self.config.ramp_s * dt
        growing = np.abs(target) > np.abs(cur)
        new = np.where(growing, cur + np.clip(target - cur, -step, step), target)
        mean = np.where(growing, 0.5 * (cur + new), new)
        return new, mean

    def to_base(self, velocity: np.ndarray) -> np.ndarray:
        """Rotate an operator-frame twist into the robot base frame."""
        out = np.empty(6)
        out[:3] = self._frame @ velocity[:3]
        out[3:] = self._frame @ velocity[3:]
        return out
