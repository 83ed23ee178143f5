"""Does a policy fit the station? Checked before a run starts, so a mismatch never moves the arm.

A policy trained on another cell may read a camera this station lacks, expect other state
features, output another action size or kind, or be timed for another control rate. Each of those
is refused with one sentence naming what the policy wants and what the station has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.types import Feature
from vla_studio.policies.base import PolicySpec
from vla_studio.policies.errors import PolicySpecMismatch

if TYPE_CHECKING:  # the station pulls in device modules; the check itself needs none of them
    from vla_studio.station import Station

# Chunk actions are aligned to ticks by time, but each ee_delta action is a displacement per
# step: at another rate the arm moves proportionally faster or slower than it was trained to.
DEFAULT_RATE_TOLERANCE = 0.10


@dataclass(frozen=True)
class StationOffer:
    """What a station gives a policy.

    Attributes:
        cameras: camera name -> ``(height, width)`` of its colour image (None: depth only).
        state_features: the robot's observation features.
        action_space: the actions the robot accepts.
        control_rate_hz: the profile's control rate.
    """

    cameras: Mapping[str, tuple[int, int] | None]
    state_features: Mapping[str, Feature]
    action_space: ActionSpace
    control_rate_hz: float
    name: str = field(default="this station")

    @classmethod
    def from_station(cls, station: "Station") -> "StationOffer":
        """Read the offer of a built station (no device I/O: features are known offline)."""
        cams: dict[str, tuple[int, int] | None] = {}
        for name, cam in station.cameras.items():
            cfg = cam.config
            cams[name] = (int(cfg.height), int(cfg.width)) if getattr(cfg, "color", True) else None
        return cls(cams, dict(station.robot.observation_features), station.robot.action_space,
                   float(station.profile.control_rate_hz), station.profile.name)


def fit_problems(spec: PolicySpec, offer: StationOffer,
                 rate_tolerance: float = DEFAULT_RATE_TOLERANCE) -> list[str]:
    """Every way ``spec`` does not fit ``offer``, one sentence each (empty: it fits)."""
    problems: list[str] = []
    colour = sorted(n for n, s in offer.cameras.items() if s is not None)
    for cam in spec.cameras:
        if cam not in offer.cameras:
            problems.append(f"it reads camera '{cam}', the station has "
                            f"{', '.join(sorted(offer.cameras)) or 'no cameras'}")
        elif offer.cameras[cam] is None:
            problems.append(f"it reads colour from camera '{cam}', which captures depth only "
                            f"(colour cameras: {', '.join(colour) or 'none'})")
    if spec.cameras and min(spec.image_size) <= 0:
        problems.append(f"its image size {list(spec.image_size)} is empty")
    for key, feature in spec.state_features.items():
        have = offer.state_features.get(key)
        want_n = int(np.prod(feature.shape))
        if have is None:
            problems.append(f"it reads robot state '{key}', the robot provides "
                            f"{', '.join(sorted(offer.state_features)) or 'none'}")
        elif int(np.prod(have.shape)) != want_n:
            problems.append(f"it reads '{key}' with {want_n} values, the robot's has "
                            f"{int(np.prod(have.shape))}")
    want, have_space = spec.action_space, offer.action_space
    if want.kind != have_space.kind:
        problems.append(f"it outputs {want.kind} actions, the station's action space is "
                        f"{have_space.kind} (profile [action_space] kind)")
    elif want.dim != have_space.dim:
        problems.append(f"it outputs {want.dim} action values, the robot takes {have_space.dim}")
    elif want.names != have_space.names:
        problems.append(f"its actions are {', '.join(want.names)}; the robot's are "
                        f"{', '.join(have_space.names)}")
    rate, station_rate = float(spec.control_rate_hz), float(offer.control_rate_hz)
    if abs(rate - station_rate) > rate_tolerance * station_rate:
        problems.append(f"it was trained at {rate:g} Hz, the station runs at {station_rate:g} Hz "
                        f"(more than {rate_tolerance:.0%} apart; set control_rate_hz in the "
                        "profile or use a policy trained at this rate)")
    return problems


def check_fit(spec: PolicySpec, offer: StationOffer, policy: str = "the policy",
              rate_tolerance: float = DEFAULT_RATE_TOLERANCE) -> None:
    """Raise :class:`PolicySpecMismatch` listing every problem, or return when ``spec`` fits."""
    problems = fit_problems(spec, offer, rate_tolerance)
    if problems:
        raise PolicySpecMismatch(policy, problems)
