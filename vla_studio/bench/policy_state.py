"""Robot state a policy reads that a benchmark's counting robot does not have.

The benchmarks drive a :class:`~vla_studio.devices.robots.null.NullRobot` (``ee_pos``,
``gripper``); a policy trained on the simulated station also reads ``ee_quat`` and would never
infer ("robot state ee_quat missing"). These fill in neutral values of the right shape: zeros,
and an identity quaternion (w first) for a 4-value ``*quat`` feature.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from vla_studio.core.types import Feature
from vla_studio.devices.robots.null import NullRobot


def neutral_state(wanted: Mapping[str, Feature],
                  have: Mapping[str, Feature]) -> dict[str, np.ndarray]:
    """Values for the features in ``wanted`` that ``have`` lacks."""
    out: dict[str, np.ndarray] = {}
    for key, feature in wanted.items():
        if key in have:
            continue
        value = np.zeros(feature.shape, np.float32)
        if key.endswith("quat") and value.size == 4:
            value.reshape(-1)[0] = 1.0
        out[key] = value
    return out


class StatefulNullRobot(NullRobot):
    """A counting robot that also reports ``extra_state`` (see :func:`neutral_state`)."""

    def __init__(self, extra_state: Mapping[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.extra_state = dict(extra_state or {})

    def get_observation(self) -> dict[str, np.ndarray]:
        return {**super().get_observation(), **self.extra_state}
