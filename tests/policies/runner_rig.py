"""A control loop on the null robot with a policy runner installed (runner tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.policies.policy_doubles import SCRIPTED  # importing registers the test policy types
from vla_studio.core.arbiter import SourceArbiter
from vla_studio.core.events import AppEvent, EventBus, StepQueue
from vla_studio.core.loop import ControlLoop
from vla_studio.core.safety import EStopLatch, SafetyLimits
from vla_studio.core.session import ControlMode, Session
from vla_studio.core.types import Step
from vla_studio.devices.robots.null import NullRobot
from vla_studio.policies.hosts import ChildHost, InProcessHost, PolicyHost
from vla_studio.policies.runner import PolicyRunner, RunnerSettings
from vla_studio.policies.station_fit import StationOffer

RATE = 20.0
# Loose on purpose: this machine is shared, and only the runner's logic is under test here.
LIMITS = SafetyLimits(max_delta_translation=1.0, max_linear_velocity=100.0, policy_timeout_ms=500.0)


@dataclass
class Rig:
    robot: NullRobot
    session: Session
    loop: ControlLoop
    runner: PolicyRunner
    events: EventBus
    steps: StepQueue[Step]
    seen: list[AppEvent] = field(default_factory=list)

    def drain(self) -> list[Step]:
        out = []
        while (s := self.steps.get(timeout=0)) is not None:
            out.append(s)
        return out

    def kinds(self) -> list[str]:
        return [e.kind for e in self.seen]

    def close(self) -> None:
        self.session.pause("test over")
        self.loop.stop()
        self.runner.stop()


def scripted_host(where: str = "in-process", **options: Any) -> PolicyHost:
    if where == "child":
        return ChildHost(f"plugin:{SCRIPTED}", options=options,
                         request_timeout=options.pop("request_timeout", 5.0))
    return InProcessHost(f"plugin:{SCRIPTED}", options=options)


def make_rig(host: PolicyHost, settings: RunnerSettings | None = None, instruction: str = "",
             start_running: bool = True) -> Rig:
    robot = NullRobot()
    robot.connect()
    latch = EStopLatch()
    session = Session(latch)
    events = EventBus()
    seen: list[AppEvent] = []
    events.subscribe(seen.append)
    arbiter = SourceArbiter(LIMITS)
    offer = StationOffer({}, robot.observation_features, robot.action_space, RATE)
    runner = PolicyRunner(host, offer, settings, events=events, session=session)
    runner.start(instruction)
    arbiter.set_policy(runner)
    loop = ControlLoop(robot, {}, arbiter, session, LIMITS, RATE, events=events)
    steps = loop.subscribe("test", 100_000)
    rig = Rig(robot, session, loop, runner, events, steps, seen)
    loop.start()
    if start_running:
        session.start(ControlMode.POLICY)
    return rig
