"""A policy built for another station is refused with every reason, before anything moves."""

from __future__ import annotations

import pytest

from vla_studio.core.action_space import ActionSpace
from vla_studio.core.types import Feature
from vla_studio.devices.registry import load_station_profile
from vla_studio.paths import resource
from vla_studio.policies.base import PolicySpec
from vla_studio.policies.errors import PolicySpecMismatch
from vla_studio.policies.station_fit import StationOffer, check_fit, fit_problems
from vla_studio.station import Station


@pytest.fixture(scope="module")
def offer() -> StationOffer:
    station = Station.from_profile(load_station_profile(resource("stations", "dry_run.toml")))
    return StationOffer.from_station(station)  # built, never connected


def spec(**changes) -> PolicySpec:
    base = dict(cameras=("front", "wrist"), image_size=(224, 224),
                state_features={"ee_pos": Feature("float32", (3,))},
                action_space=ActionSpace.ee_delta(), control_rate_hz=20.0, chunk_size=8)
    base.update(changes)
    return PolicySpec(**base)


def test_the_offer_is_read_from_a_built_station_without_connecting(offer):
    assert offer.cameras == {"front": (240, 320), "wrist": (240, 320)}
    assert offer.action_space.kind == "ee_delta" and offer.control_rate_hz == 20.0
    assert "ee_pos" in offer.state_features
    check_fit(spec(), offer)  # fits: no exception


def test_every_mismatch_is_named_in_one_refusal(offer):
    bad = spec(cameras=("front", "top"), state_features={"joint_pos": Feature("float32", (7,))},
               action_space=ActionSpace.joint_position(tuple(f"j{i}" for i in range(7))),
               control_rate_hz=10.0)
    with pytest.raises(PolicySpecMismatch) as err:
        check_fit(bad, offer, "my_policy")
    problems = err.value.problems
    assert len(problems) == 4
    text = str(err.value)
    assert text.startswith("my_policy does not fit this station")
    assert "camera 'top'" in text and "front, wrist" in text
    assert "joint_pos" in text
    assert "joint_position actions" in text and "ee_delta" in text
    assert "10 Hz" in text and "20 Hz" in text


def test_action_size_and_state_size_mismatches(offer):
    problems = fit_problems(spec(state_features={"ee_pos": Feature("float32", (6,))}), offer)
    assert problems == ["it reads 'ee_pos' with 6 values, the robot's has 3"]
    joint = StationOffer({}, {}, ActionSpace.joint_position(("a", "b")), 20.0)
    wide = spec(cameras=(), state_features={},
                action_space=ActionSpace.joint_position(("a", "b", "c")))
    assert fit_problems(wide, joint) == ["it outputs 4 action values, the robot takes 3"]


def test_a_depth_only_camera_cannot_feed_colour(offer):
    depth_only = StationOffer({"front": None}, offer.state_features, offer.action_space, 20.0)
    assert "depth only" in fit_problems(spec(cameras=("front",)), depth_only)[0]


def test_a_rate_within_tolerance_fits_and_one_beyond_does_not(offer):
    assert fit_problems(spec(control_rate_hz=21.0), offer) == []
    assert fit_problems(spec(control_rate_hz=23.0), offer)
    assert fit_problems(spec(control_rate_hz=23.0), offer, rate_tolerance=0.2) == []
