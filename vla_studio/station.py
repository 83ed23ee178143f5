"""A station: the devices of one profile, the safety objects and the control loop, wired up.

This is the Qt-free object the CLI, the benchmarks, the tests and the GUI all drive::

    station = Station.from_profile(load_station_profile("resources/stations/sim_tabletop.toml"))
    station.connect()          # robot, cameras (capture threads), teleops (reader threads)
    station.start()            # control-loop thread; session starts PAUSED
    station.use_teleop("keyboard")
    station.session.start(ControlMode.TELEOP)
    ...
    station.close()            # stops and joins every thread it started

Ownership: the station owns every device and thread it creates; ``close`` is the single place
they are stopped, in reverse order of creation.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable

from vla_studio.core import commands
from vla_studio.core.arbiter import ActionSource, SourceArbiter
from vla_studio.core.clocks import HOST_CLOCK, Clock
from vla_studio.core.events import EventBus
from vla_studio.core.loop import ControlLoop
from vla_studio.core.profile import StationProfile
from vla_studio.core.safety import EStopLatch
from vla_studio.core.session import Session, SessionError
from vla_studio.devices.base import DeviceError, Robot, Teleop, TeleopContext
from vla_studio.devices.cameras.base import Camera, CameraState, CameraStatus
from vla_studio.devices.cameras.state_events import camera_event
from vla_studio.devices.registry import CAMERAS, ROBOTS, TELEOPS

log = logging.getLogger(__name__)


class Station:
    """Devices + latch + session + arbiter + control loop for one profile.

    Args:
        profile: the validated station profile.
        robot, cameras, teleops: device instances (built from the profile by
            :meth:`from_profile`; tests may pass their own).
    """

    def __init__(self, profile: StationProfile, robot: Robot, cameras: dict[str, Camera],
                 teleops: dict[str, Teleop]) -> None:
        self.profile = profile
        self.robot, self.cameras, self.teleops = robot, cameras, teleops
        self.events = EventBus()
        # Tick times, episode windows and frame ages are on this clock (a lock-step station
        # replaces it with simulated time: vla_studio.sim.lockstep).
        self.clock: Clock = HOST_CLOCK
        self.latch = EStopLatch()
        self.session = Session(self.latch)
        self.arbiter = SourceArbiter(profile.safety)
        try:
            self.loop = ControlLoop(robot, cameras, self.arbiter, self.session, profile.safety,
                                    profile.control_rate_hz, events=self.events)
        except ValueError as exc:  # e.g. joint-position actions from a robot without joint limits
            raise DeviceError(f"{profile.path}: robot {robot.name!r}: {exc}") from None
        self.active_teleop: str | None = None
        # teleop name -> where its require_deadman came from (see resolve_deadman)
        self.deadman_origins: dict[str, str] = {}
        self.instruction = ""
        self._commands: dict[str, list[Callable[[], None]]] = {}
        self._commands_lock = threading.Lock()
        self._connected = False
        self.on_command(commands.RUN_PAUSE, lambda: self.session.pause("pause command"))
        self.on_command(commands.RUN_START, self._start_from_command)
        self.on_command(commands.ROBOT_RECOVER, self.recover_robot)
        for cam in cameras.values():  # camera trouble reaches the event bus, never silent
            if hasattr(cam, "add_listener"):
                cam.add_listener(self._publish_camera_event)

    @classmethod
    def from_profile(cls, profile: StationProfile) -> "Station":
        """Instantiate every device of ``profile`` (no I/O happens until :meth:`connect`)."""
        robot_cls = ROBOTS.load(profile.robot.type)
        try:
            robot = robot_cls(profile.robot.config, profile.action_space.kind)
        except DeviceError as exc:
            raise DeviceError(f"{profile.path}: action_space.kind: {exc}") from None
        robot.control_period_s = 1.0 / profile.control_rate_hz
        cameras = {s.name: CAMERAS.load(s.type)(s.config) for s in profile.cameras}
        teleops, origins = {}, {}
        for s in profile.teleops:
            teleop_cls = TELEOPS.load(s.type)
            config, origins[s.name] = resolve_deadman(teleop_cls, s.config, robot_cls.simulated)
            teleops[s.name] = teleop_cls(config)
        station = cls(profile, robot, cameras, teleops)
        station.deadman_origins = origins
        return station

    # ----- lifecycle -------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect the robot (errors raise DeviceError), then cameras and teleops.

        A camera or teleop device that is missing does not stop the station: it is reported on
        the event bus and keeps being retried by its own thread.
        """
        self.robot.connect()
        self._connected = True
        for cam in self.cameras.values():
            cam.connect()
            status = cam.status()
            if status.last_error:
                self.events.emit("camera.error", f"camera '{cam.name}': {status.last_error}",
                                 logging.WARNING, camera=cam.name)
        for name, teleop in self.teleops.items():
            teleop.attach(self.teleop_context())
            try:
                teleop.connect()
            except DeviceError as exc:
                self.events.emit("teleop.error", f"teleop '{name}': {exc}", logging.WARNING,
                                 teleop=name)

    def start(self) -> None:
        """Start the control loop (the session stays PAUSED until someone starts a run)."""
        if not self._connected:
            self.connect()
        self.loop.start()

    def close(self) -> None:
        """Stop the loop, close the sources, disconnect every device. Safe to call twice."""
        self.session.pause("station closing")
        self.loop.stop()
        for source in (self.arbiter.set_teleop(None), self.arbiter.set_policy(None)):
            if source is not None:
                _close_quietly(source)
        for teleop in self.teleops.values():
            _disconnect_quietly(teleop)
        for cam in self.cameras.values():
            _disconnect_quietly(cam)
        if self._connected:
            _disconnect_quietly(self.robot)
            self._connected = False

    def __enter__(self) -> "Station":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _publish_camera_event(self, status: CameraStatus, previous: CameraState) -> None:
        """Camera state listener (runs on the camera's capture thread; EventBus is thread-safe)."""
        event = camera_event(status, previous)
        if event is not None:
            self.events.emit(event.kind, event.message, event.level, camera=event.camera)

    # ----- episodes ---------------------------------------------------------------------------
    def begin_episode(self, instruction: str, seed: int | None = None) -> None:
        """Prepare an episode: pause, reset the robot's scene (simulators), tell every source the
        instruction. The caller starts the session when the operator (or script) is ready."""
        self.session.pause("new episode")
        self.loop.call_on_loop(lambda: self.robot.prepare_episode(instruction, seed))
        self.instruction = instruction
        self.arbiter.reset(instruction)

    # ----- sources ---------------------------------------------------------------------------
    def teleop_context(self) -> TeleopContext:
        return TeleopContext(self.robot.action_space, self.loop.period_s, self.latch, self.events,
                             self.robot, self.run_command)

    def use_teleop(self, name: str) -> ActionSource:
        """Make teleop device ``name`` the teleop source (the previous one is closed)."""
        if name not in self.teleops:
            raise DeviceError(f"no teleop device named {name!r}; this station has: "
                              f"{', '.join(self.teleops) or '(none)'}")
        source = self.teleops[name].make_action_source(self.teleop_context())
        self.set_teleop_source(source)
        self.active_teleop = name
        self.events.emit("teleop.active", f"Teleop device: {name}", name=name)
        return source

    def set_teleop_source(self, source: ActionSource | None) -> None:
        old = self.arbiter.set_teleop(source)
        if old is not None and old is not source:
            _close_quietly(old)

    def set_policy_source(self, source: ActionSource | None) -> None:
        old = self.arbiter.set_policy(source)
        if old is not None and old is not source:
            _close_quietly(old)

    # ----- named commands (teleop buttons, keyboard shortcuts, CLI) ----------------------------
    def on_command(self, name: str, handler: Callable[[], None]) -> None:
        """Register ``handler`` for command ``name`` (e.g. ``"record.toggle"``)."""
        with self._commands_lock:
            self._commands.setdefault(name, []).append(handler)

    def run_command(self, name: str) -> bool:
        """Run the handlers of ``name`` on the calling thread; False when nobody handles it."""
        if name == commands.ESTOP:  # never depends on a handler being registered
            self.latch.trigger("stop command", "command")
            return True
        with self._commands_lock:
            handlers = list(self._commands.get(name, ()))
        for handler in handlers:
            try:
                handler()
            except Exception:
                log.exception("command %s failed", name)
        return bool(handlers)

    def recover_robot(self) -> None:
        """Run the robot's error recovery on the loop thread, without waiting for it.

        The outcome is published: ``robot.recovered`` or ``robot.recover_failed``. Recovery
        never moves the robot nor resets the e-stop (the operator does that, in two steps).
        """
        def done(future: Any) -> None:
            exc = future.exception()
            if exc is None:
                self.events.emit("robot.recovered", f"Robot {self.robot.name!r} recovered from "
                                 "its error; reset the e-stop to move it again.", logging.INFO)
            else:
                self.events.emit("robot.recover_failed", f"Robot {self.robot.name!r} did not "
                                 f"recover: {exc}", logging.ERROR, error=str(exc))

        self.loop.post_to_loop(self.robot.recover).add_done_callback(done)

    def _start_from_command(self) -> None:
        try:
            self.session.start(self.session.mode)
        except SessionError as exc:
            self.events.emit("session.refused", str(exc), logging.WARNING)


def resolve_deadman(teleop_cls: type, config: Any, robot_simulated: bool) -> tuple[Any, str]:
    """The teleop config with ``require_deadman`` decided, and where the decision came from.

    An explicit ``require_deadman`` in the profile always wins. Otherwise gamepads and
    SpaceMice (``deadman_default_on_real_robots``) require the deadman when the robot is not
    simulated, and nothing requires it on a simulated robot.

    Returns:
        ``(config, origin)`` with origin ``"profile"``, ``"default for a real robot"`` or
        ``"default for a simulated robot"`` (``""`` for configs without the setting).
    """
    if not dataclasses.is_dataclass(config) or not hasattr(config, "require_deadman"):
        return config, ""
    if config.require_deadman is not None:
        return config, "profile"
    on = bool(getattr(teleop_cls, "deadman_default_on_real_robots", False)) and not robot_simulated
    origin = "default for a simulated robot" if robot_simulated else "default for a real robot"
    return dataclasses.replace(config, require_deadman=on), origin


def _close_quietly(source: ActionSource) -> None:
    try:
        source.close()
    except Exception:
        log.exception("closing action source %r failed", source)


def _disconnect_quietly(device: object) -> None:
    try:
        device.disconnect()  # type: ignore[attr-defined]
    except Exception:
        log.exception("disconnecting %r failed", device)
