"""The annotation model the replay view edits: tags, segments that never overlap, edits an
editor can undo exactly (and a conflict when someone else edited since), keys of newer versions
kept; the segment editing functions; the timeline events read from a recording."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_studio.bench.replay_episode import CameraPlan, EpisodePlan, write_episode
from vla_studio.data import segments as seg
from vla_studio.data.annotations import (AnnotationConflict, AnnotationError, edit_annotations,
                                         load_annotations, sidecar_path, undo_annotation,
                                         write_annotations)
from vla_studio.data.replay_episode import ReplayEpisode, runs


@pytest.fixture
def episode(tmp_path):
    return write_episode(tmp_path / "episodes" / "20261201-100000_aaaaaaaa.h5",
                         EpisodePlan(steps=120, cameras=(CameraPlan("front", 64, 48),)))


def test_tags_are_distinct_trimmed_strings(episode):
    after = write_annotations(episode, {"tags": ["  wobbly   grasp ", "review", "review"]})
    assert after["tags"] == ["wobbly grasp", "review"]
    with pytest.raises(AnnotationError, match="empty"):
        write_annotations(episode, {"tags": ["ok", " "]})
    assert load_annotations(episode).annotations["tags"] == ["wobbly grasp", "review"]


def test_segments_are_stored_sorted_and_may_not_overlap(episode):
    after = write_annotations(episode, {"segments": [
        {"start": 50, "end": 90, "label": "lift "}, {"start": 0, "end": 50, "label": "reach"}]})
    assert [s["label"] for s in after["segments"]] == ["reach", "lift"]
    with pytest.raises(AnnotationError, match="overlap"):
        write_annotations(episode, {"segments": [{"start": 0, "end": 60, "label": "a"},
                                                 {"start": 50, "end": 90, "label": "b"}]})


def test_an_editor_undoes_exactly_its_own_edit(episode):
    first = edit_annotations(episode, {"success": True})
    second = edit_annotations(episode, {"quality": 4, "notes": "good"})
    assert first.entry_id != second.entry_id and second.changes == {"quality": 4,
                                                                     "notes": "good"}
    with pytest.raises(AnnotationConflict, match="edited elsewhere"):
        undo_annotation(episode, expect=first.entry_id)  # not the latest: nothing changes
    assert load_annotations(episode).annotations["quality"] == 4
    assert undo_annotation(episode, expect=second.entry_id)
    assert undo_annotation(episode, expect=first.entry_id)
    assert load_annotations(episode).annotations == {}
    assert undo_annotation(episode) is False


def test_keys_of_a_newer_version_survive_an_edit(episode):
    write_annotations(episode, {"notes": "x"})
    path = sidecar_path(episode)
    data = json.loads(path.read_text())
    data["annotations"]["camera_review"] = {"front": "blurry"}
    path.write_text(json.dumps(data))
    write_annotations(episode, {"quality": 2})
    data = json.loads(path.read_text())
    assert data["annotations"]["camera_review"] == {"front": "blurry"}
    assert "camera_review" not in load_annotations(episode).annotations


def test_segment_edits_clamp_against_their_neighbours():
    segs, i = seg.add_segment([], 10, 40, "reach", 100)
    segs, j = seg.add_segment(segs, 70, 30, "grasp", 100)  # dragged leftwards, clamped at 40
    assert (i, j) == (0, 1) and segs[1] == {"start": 40, "end": 70, "label": "grasp"}
    assert seg.add_segment(segs, 20, 25, "x", 100) == (segs, None)  # inside a segment
    segs = seg.resize_segment(segs, 0, "end", 55)  # stops at the next segment's start
    assert segs[0]["end"] == 40
    segs = seg.resize_segment(segs, 1, "start", 60)
    assert segs[1] == {"start": 60, "end": 70, "label": "grasp"}
    segs = seg.move_segment(segs, 1, 95, 100)
    assert segs[1] == {"start": 90, "end": 100, "label": "grasp"}
    segs, k = seg.split_at(segs, 20, 100)
    assert k == 1 and [(s["start"], s["end"]) for s in segs] == [(10, 20), (20, 40), (90, 100)]
    segs, k = seg.split_at(segs, 50, 100)  # in a gap: a new segment up to the next one
    assert k == 2 and segs[2] == {"start": 50, "end": 90, "label": ""}
    assert seg.segment_at(segs, 55) == 2 and seg.segment_at(segs, 5) is None
    segs = seg.relabel_segment(segs, 2, "  lift ")
    assert segs[2]["label"] == "lift"
    assert seg.boundaries(seg.delete_segment(segs, 0)) == [20, 40, 50, 90, 100]


def test_per_step_labels_and_segments_within_a_trim():
    segs = [{"start": 0, "end": 4, "label": "reach"}, {"start": 6, "end": 10, "label": "lift"}]
    labels, index = seg.steps_labels(segs, 2, 8)
    assert labels == ["reach", "reach", "", "", "lift", "lift"]
    assert index == [0, 0, -1, -1, 1, 1]
    assert seg.within(segs, 2, 8) == [{"start": 0, "end": 2, "label": "reach"},
                                      {"start": 4, "end": 6, "label": "lift"}]


def test_the_timeline_events_come_from_the_recording(episode):
    ep = ReplayEpisode(episode)
    frames = ep.open_frames()
    try:
        kinds = {e.kind for e in ep.events(frames)}
    finally:
        frames.close()
    assert {"hold", "intervention", "clamp", "estop", "success"} <= kinds
    inter = [e for e in ep.events() if e.kind == "intervention"][0]
    assert (inter.start, inter.end) == (48, 57)
    assert ep.step_at(ep.time_of(33) + 1e-6) == 33 and ep.step_at(-5) == 0
    assert ep.step_at(1e9) == ep.num_steps - 1
    write_annotations(episode, {"segments": [{"start": 10, "end": 20, "label": "a"}],
                                "trim": [5, 100]})
    ep.reload_annotations()
    assert {5, 10, 20, 99} <= set(ep.event_steps(ep.events()))
    names = {s.key: s for s in ep.series}
    assert names["action"].units[:3] == ("m", "m", "m") and names["state/ee_pos"].names == (
        "x", "y", "z")
    assert np.isnan(names["requested_action"].values[0]).all()  # held: nothing was asked
    assert runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]
