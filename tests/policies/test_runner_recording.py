"""A policy run recorded as an episode: the data side stores what the runner provides (item 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.profiles import changed_profile
from tests.waiting import wait_until
from vla_studio.core.session import ControlMode
from vla_studio.data.checksums import covered_columns, parse_covers
from vla_studio.data.episode_file import SOURCE_CODES, EpisodeReader
from vla_studio.data.integrity import verify_episode
from vla_studio.data.labels import EpisodeLabels
from vla_studio.data.recorder import Recorder
from vla_studio.core.types import SourceKind
from vla_studio.paths import resource
from vla_studio.policies.runner import PolicyRunner
from vla_studio.policies.small_conv import SmallConvConfig, write_small_conv
from vla_studio.station import Station


@pytest.fixture
def station(tmp_path):
    profile = changed_profile(resource("stations", "dry_run.toml"), tmp_path)
    st = Station.from_profile(profile)
    st.start()
    for cam in st.cameras.values():
        assert cam.wait_for_frame(timeout_s=5.0) is not None
    yield st
    st.close()


def test_a_policy_run_records_policy_actions_confidence_and_the_policy_id(station, tmp_path):
    ckpt = write_small_conv(tmp_path / "policy", SmallConvConfig(name="small_conv", width=8,
                                                                 chunk_size=6))
    runner = PolicyRunner.for_station(str(ckpt), station)
    runner.start()
    station.set_policy_source(runner)
    station.session.set_mode(ControlMode.POLICY)
    recorder = Recorder(station, tmp_path / "dataset")
    recorder.connect()
    try:
        recorder.start(EpisodeLabels("pick up the red cube"))
        assert wait_until(lambda: runner.chunks >= 6, timeout=60)
        recorder.stop(success=False)
        assert recorder.wait_idle()
    finally:
        recorder.disconnect()
    with EpisodeReader(recorder.last_episode.path) as ep:
        source = ep.step("action_source")
        policy_action = ep.step("policy_action")
        confidence = ep.step("confidence")
        requested = ep.step("requested_action")
        moved = source == SOURCE_CODES[SourceKind.POLICY]
        assert moved.sum() >= 5
        assert np.isfinite(policy_action[moved]).all()
        assert np.isnan(policy_action[~moved]).all()  # holds carry no policy action
        # consistency confidence: unknown for the first chunk, a number in [0, 1] afterwards
        known = confidence[moved][np.isfinite(confidence[moved])]
        assert known.size and ((known >= 0) & (known <= 1)).all()
        np.testing.assert_allclose(policy_action[moved], requested[moved], atol=1e-6)
        assert ep.attrs["policy_id"].startswith("native:") and "#" in ep.attrs["policy_id"]
        # latency and chunk numbers per step: which chunk each policy step came from
        latency, seq, index = (ep.step(k) for k in ("policy_latency_ms", "chunk_seq",
                                                     "chunk_index"))
        assert (latency[moved] > 0).all() and np.isnan(latency[~moved]).all()
        assert (seq[moved] >= 1).all() and (seq[~moved] == -1).all()
        assert (np.diff(seq[moved]) >= 0).all() and len(set(seq[moved])) >= 2
        assert ((index[moved] >= 0) & (index[moved] < 6)).all()
        # one latency per chunk: every step of a chunk carries the same figure
        for chunk in set(seq[moved]):
            assert len(set(latency[moved][seq[moved] == chunk])) == 1
        assert ep.attrs["confidence_method"] == "consistency"
        assert ep.attrs["confidence_mean"] == pytest.approx(known.mean(), abs=1e-3)
        assert ep.attrs["confidence_min"] == pytest.approx(known.min(), abs=1e-3)
    assert not math.isnan(runner.snapshot().latency_p50_ms)
    # the checksums cover the new columns, and the Episodes list sees a policy run's confidence
    check = verify_episode(recorder.last_episode.path)
    assert check.status == "ok", check.problems
    covers = covered_columns(["policy_latency_ms", "chunk_seq", "chunk_index"])
    assert covers == ["chunk_index", "chunk_seq", "policy_latency_ms"]
    with EpisodeReader(recorder.last_episode.path) as ep:
        assert set(covers) <= set(parse_covers(ep.file["checksums/step_chunks"].attrs["covers"]))
    episode_id = recorder.last_episode.episode_id
    summary = next(s for s in recorder.index.refresh() if s.episode_id == episode_id)
    assert summary.source == "policy"
    assert summary.confidence == pytest.approx(known.mean(), abs=1e-3)
    assert summary.confidence_method == "consistency"


def test_a_damaged_latency_row_fails_verification(station, tmp_path):
    """The per-chunk latency is covered by the step checksums like every other column."""
    import h5py

    ckpt = write_small_conv(tmp_path / "policy", SmallConvConfig(name="small_conv", width=8,
                                                                 chunk_size=4))
    runner = PolicyRunner.for_station(str(ckpt), station)
    runner.start()
    station.set_policy_source(runner)
    station.session.set_mode(ControlMode.POLICY)
    recorder = Recorder(station, tmp_path / "dataset")
    recorder.connect()
    try:
        recorder.start(EpisodeLabels("pick up the red cube"))
        assert wait_until(lambda: runner.chunks >= 3, timeout=60)
        recorder.stop(success=False)
        assert recorder.wait_idle()
    finally:
        recorder.disconnect()
    path = recorder.last_episode.path
    with h5py.File(path, "r+") as f:
        column = f["steps/policy_latency_ms"]
        column[0] = column[0] + 1.0 if np.isfinite(column[0]) else 123.0
    check = verify_episode(path)
    assert check.status == "damaged", check.as_dict()
