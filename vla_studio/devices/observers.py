"""Station observers: plugins that watch a run and report it elsewhere (a ROS 2 graph, a logger).

An observer kind is a config dataclass and a :class:`StationObserver` registered in the
entry-point group ``vla_studio.observers``; a profile lists instances under ``[[observers]]``.
It sees what the window sees, and nothing it does can reach the robot or slow the loop::

    control loop --Step--> loop.snapshot (latest only) --wait_newer()--> observer's own thread
    EStopLatch ---------------------------------------> latch.is_tripped (any thread)
    EventBus   --subscribe() (callbacks run on the emitter's thread: only hand over)--> observer

The station starts observers after the control loop and stops them before it, each from the
thread that calls ``start()`` / ``close()``; an observer that cannot start is reported on the
event bus (``observer.error``) and the station runs without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

from vla_studio.core.events import EventBus, LatestSlot
from vla_studio.core.safety import EStopLatch
from vla_studio.core.types import Feature, Step
from vla_studio.devices.base import DeviceConfig


@dataclass(frozen=True)
class ObserverConfig(DeviceConfig):
    """Base config of observers (``name`` is unique among the station's observers)."""


@dataclass(frozen=True)
class ObserverContext:
    """What an observer may watch (read-only views of the station).

    Attributes:
        station_name: the profile's name.
        snapshot: the loop's latest step (``wait_newer`` to follow it at your own pace).
        latch: the e-stop latch (``is_tripped``, ``event``).
        events: the station's event bus.
        action_names: names of the action's components, in order.
        state_features: the robot's observation features (names and units of each state key).
        camera_names: the station's cameras.
        period_s: the control period.
    """

    station_name: str
    snapshot: LatestSlot[Step]
    latch: EStopLatch
    events: EventBus
    action_names: tuple[str, ...]
    state_features: Mapping[str, Feature] = field(default_factory=dict)
    camera_names: tuple[str, ...] = ()
    period_s: float = 0.05


class StationObserver(ABC):
    """Watches a station's run from threads of its own.

    Args:
        config: the observer's validated ``[[observers]]`` table.
    """

    config_class: ClassVar[type[ObserverConfig]] = ObserverConfig

    def __init__(self, config: ObserverConfig) -> None:
        self.config = config
        self.name = config.name

    @abstractmethod
    def start(self, context: ObserverContext) -> None:
        """Open what it reports to and start its threads (no waiting on the loop).

        Raises:
            DeviceError: it cannot start; the message says what to check.
        """

    @abstractmethod
    def stop(self) -> None:
        """Stop and join its threads, close what it opened. Safe to call twice."""
