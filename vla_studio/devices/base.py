"""Abstract bases for robots and teleop devices (cameras: :mod:`vla_studio.devices.cameras.base`).

Pattern for every device kind (after LeRobot): a config dataclass, an abstract base class and a
registry entry. Constructors do no I/O; ``connect()`` opens the device and starts any thread the
device owns, ``disconnect()`` stops and joins it. Features are available before connecting, so a
dataset schema can be built without hardware.
"""

from __future__ import annotations

import abc
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping

import numpy as np

from vla_studio.core.action_space import EE_DELTA, ActionSpace, JointLimits
from vla_studio.core.config import option
from vla_studio.core.types import Feature

if TYPE_CHECKING:
    from vla_studio.core.arbiter import ActionSource
    from vla_studio.core.events import EventBus
    from vla_studio.core.safety import EStopLatch

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """A device problem the user can act on; the message says what happened and what to do."""


@dataclass(frozen=True)
class DeviceConfig:
    """Fields shared by every device config. Subclasses add their own (with defaults)."""

    name: str = option("", help="unique name in the station (defaults to the type)")


@dataclass(frozen=True)
class DetectedDevice:
    """Hardware found by :meth:`Device.detect` (``vla-studio devices``)."""

    kind: str  # registry type name, e.g. "realsense"
    id: str  # what to put in the profile to select it (serial, index, path)
    description: str
    details: Mapping[str, str] = field(default_factory=dict)


class Device(abc.ABC):
    """Common lifecycle of every device.

    Attributes:
        config_class: the dataclass this kind's profile table is validated against.
    """

    config_class: ClassVar[type[DeviceConfig]] = DeviceConfig

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device and start its threads. Raises DeviceError with a fix in the message."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Stop and join threads, release the device. Safe to call twice."""

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        """Hardware of this kind attached to the machine (never raises; empty when unsupported)."""
        return []


@dataclass(frozen=True)
class RobotConfig(DeviceConfig):
    """Base config of robots."""


class Robot(Device):
    """A robot arm (or anything) that takes actions and reports state.

    ``send_action`` returns what was actually sent; ``hold`` is the controlled stop the loop uses
    while paused or e-stopped: hold the current pose and open nothing.

    Driver contract (docs/robots.md, "Driver contract"):

    * The control loop thread calls :meth:`get_observation`, :meth:`send_action` and
      :meth:`hold`, each under a deadline (``safety.robot_deadline_ms``): a call that misses it
      latches the e-stop, and the loop carries on without the robot until the call returns.
    * :meth:`emergency_hold` is called by the e-stop's own thread while the loop thread may be
      inside any of those calls: implement :meth:`_emergency_hold` with the robot's protective
      stop, thread-safe and quick. Until :meth:`release_emergency_hold` (the loop, after the
      e-stop was reset) every command becomes a hold.
    * The driver holds by itself when commands stop arriving (a driver-side watchdog, as
      ur_rtde's and libfranka's): VLA Studio's process can freeze or die.

    Args:
        config: the robot's config.
        action_kind: ``"ee_delta"`` or ``"joint_position"`` (from the profile's ``[action_space]``),
            one of :attr:`supported_action_kinds`.
    """

    config_class: ClassVar[type[DeviceConfig]] = RobotConfig
    supported_action_kinds: ClassVar[tuple[str, ...]] = (EE_DELTA,)
    # A simulated (or pretend) robot cannot hurt anyone: safety defaults that cost the operator
    # effort, such as the teleop deadman, are off for it and on for every other robot.
    simulated: ClassVar[bool] = False

    def __init__(self, config: RobotConfig, action_kind: str = EE_DELTA) -> None:
        super().__init__(config)
        if action_kind not in self.supported_action_kinds:
            raise DeviceError(
                f"robot {type(self).__name__} does not accept {action_kind!r} actions; "
                f"it accepts: {', '.join(self.supported_action_kinds)}")
        self.action_kind = action_kind
        # The station sets this from the profile before connecting: a simulator advances physics
        # by one period per command, a real driver may interpolate over it.
        self.control_period_s = 0.05
        self._last_sent: np.ndarray | None = None
        self._emergency = threading.Event()  # set by emergency_hold (any thread)

    @property
    @abc.abstractmethod
    def action_space(self) -> ActionSpace: ...

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, Feature]:
        """State features (``joint_pos``, ``ee_pos``, ``gripper``, ...) of :meth:`get_observation`."""

    @property
    def action_features(self) -> dict[str, Feature]:
        return {"action": self.action_space.feature}

    @property
    def joint_limits(self) -> JointLimits | None:
        """Position range and top speed of each joint from the robot's spec, in action order.

        Required when the robot accepts ``joint_position`` actions: the safety filter clips
        targets to the range and caps each step by the speed, and the command gate refuses
        anything outside them. Available before :meth:`connect`. None (the default) for robots
        driven only by end-effector deltas.
        """
        return None

    @property
    def last_sent(self) -> np.ndarray | None:
        return self._last_sent

    @abc.abstractmethod
    def get_observation(self) -> dict[str, np.ndarray]:
        """Current state, keyed like :attr:`observation_features`. Called on the loop thread."""

    @abc.abstractmethod
    def _send(self, action: np.ndarray) -> np.ndarray:
        """Send a filtered action to the hardware; return what was actually sent."""

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Send ``action`` (already safety-filtered) and return what the robot actually received.

        While an emergency hold is in effect the command is replaced by a hold: a tick that was
        already past its e-stop check when the stop came can no longer move the robot.
        """
        action = np.asarray(action, dtype=np.float64)
        if self._emergency.is_set():
            action = self.action_space.hold_action({}, self._last_sent)
        return self._deliver(action)

    def _deliver(self, action: np.ndarray) -> np.ndarray:
        sent = np.asarray(self._send(action), dtype=np.float64)
        self._last_sent = sent
        return sent

    def hold(self, state: Mapping[str, np.ndarray]) -> np.ndarray:
        """Controlled stop: hold the current pose, leave the gripper as last commanded."""
        return self._deliver(self.action_space.hold_action(state, self._last_sent))

    # ----- emergency hold (any thread) ----------------------------------------------------------
    def emergency_hold(self) -> None:
        """Stop now, whatever the control-loop thread is doing; safe from any thread.

        The e-stop latch calls it from its own thread when it latches. Every later command is a
        hold until :meth:`release_emergency_hold`. Idempotent; must return quickly.
        """
        self._emergency.set()
        self._emergency_hold()

    @property
    def emergency_held(self) -> bool:
        """Whether an emergency hold is in effect."""
        return self._emergency.is_set()

    def release_emergency_hold(self) -> None:
        """Accept motion commands again (the loop thread, once the e-stop has been reset; the
        session is PAUSED then, so the next commands are holds anyway)."""
        if self._emergency.is_set():
            self._emergency.clear()
            self._release_emergency_hold()

    @abc.abstractmethod
    def _emergency_hold(self) -> None:
        """The driver's part of :meth:`emergency_hold`: the robot's protective stop.

        Runs on the e-stop's thread, possibly while the loop thread is inside
        :meth:`get_observation`, :meth:`send_action` or :meth:`hold`: it must be thread-safe
        with respect to them, must not wait for them, and should return within a millisecond or
        two (a network driver sends its stop on its own connection or socket).
        """

    def _release_emergency_hold(self) -> None:
        """The driver's part of :meth:`release_emergency_hold` (default: nothing)."""

    # ----- robot-side faults (reflexes, protective stops) ---------------------------------------
    @property
    def fault(self) -> str:
        """One line naming a robot-side error that stopped the robot and needs :meth:`recover`
        (a Franka reflex, a UR protective stop); "" when there is none (the default)."""
        return ""

    def recover(self) -> None:
        """Clear a robot-side error with the robot's own error recovery.

        The station's ``robot.recover`` command calls it on the loop thread, between ticks. It
        never starts a motion: the e-stop a fault latched stays latched until the operator
        resets it. Raises DeviceError when recovery failed or this robot has none (the default).
        """
        raise DeviceError(f"robot {type(self).__name__} has no error recovery")

    def reset_episode(self, seed: int | None = None) -> None:
        """Prepare a new episode (a simulator re-samples its scene; real robots do nothing).

        Called between episodes while the session is PAUSED, on the thread that owns the loop's
        pause (the loop only holds while paused, so no tick runs a move concurrently).
        """

    def prepare_episode(self, instruction: str, seed: int | None = None) -> None:
        """Like :meth:`reset_episode`, knowing the episode's language instruction (a simulator
        samples a layout that suits the task). Default: ``reset_episode(seed)``."""
        self.reset_episode(seed)

    def episode_success(self, instruction: str) -> bool | None:
        """Whether ``instruction`` is accomplished now, for robots that can judge it
        (a simulator with task predicates); None when unknown (real robots)."""
        return None


@dataclass(frozen=True)
class TeleopConfig(DeviceConfig):
    """Base config of teleop devices."""


@dataclass(frozen=True)
class TeleopState:
    """Raw device data, before any mapping to robot actions.

    Attributes:
        stamp: host monotonic time the device was last read successfully. A device that stops
            answering keeps an old stamp, which is how the watchdog notices.
        axes: device axes by name, normalised to [-1, 1] (triggers [0, 1]).
        buttons: device buttons by name.
        connected: False after an unplug; ``stamp`` then stops advancing.
    """

    stamp: float
    axes: Mapping[str, float] = field(default_factory=dict)
    buttons: Mapping[str, bool] = field(default_factory=dict)
    connected: bool = True


@dataclass
class TeleopContext:
    """What a teleop device needs to become an action source in a station.

    Attributes:
        action_space: the robot's action space.
        period_s: control period (mappings scale by it, so motion is rate-independent).
        latch: the e-stop latch (a STOP button triggers it from the device's own thread).
        events: the application event bus (button events such as "record", "success").
        robot: the station's robot (the scripted expert reads the simulator through it).
    """

    action_space: ActionSpace
    period_s: float
    latch: "EStopLatch"
    events: "EventBus"
    robot: Robot
    on_command: Callable[[str], None] | None = None  # named commands: "record.toggle", ...


class Teleop(Device):
    """An input device an operator drives the robot with."""

    config_class: ClassVar[type[DeviceConfig]] = TeleopConfig

    @property
    @abc.abstractmethod
    def axis_names(self) -> tuple[str, ...]:
        """Raw axis names :meth:`get_state` reports (available before connecting)."""

    @property
    @abc.abstractmethod
    def button_names(self) -> tuple[str, ...]:
        """Raw button names :meth:`get_state` reports (available before connecting)."""

    @abc.abstractmethod
    def get_state(self) -> TeleopState:
        """Latest raw state; never blocks."""

    @abc.abstractmethod
    def make_action_source(self, ctx: TeleopContext) -> "ActionSource":
        """Build the action source that turns this device's input into actions for ``ctx``."""

    def attach(self, ctx: TeleopContext) -> None:
        """The station this device serves; called before :meth:`connect`.

        Every teleop device of a station is attached, not only the active one, so a device can
        keep ``ctx.latch`` and ``ctx.on_command``: its STOP button latches the e-stop (and its
        record/success buttons work) whichever device is driving. Default: nothing.
        """
