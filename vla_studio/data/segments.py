"""Subtask segments of an episode: pure editing functions over the ``segments`` annotation.

A segment is ``{"start": int, "end": int, "label": str}``, the step range ``[start, end)``;
an episode's segments are sorted by start and never overlap (what
:func:`vla_studio.data.annotations.validate` accepts). Every function here takes a list and
returns a new one (the input is never changed), so an editor can compute the result of a drag
and write it as one undoable edit. Edits that would overlap a neighbour are clamped against it
rather than refused: dragging an edge into the next segment stops at its boundary.
"""

from __future__ import annotations

from typing import Any, Sequence

Segment = dict[str, Any]


def _copy(segments: Sequence[Segment]) -> list[Segment]:
    out = [{"start": int(s["start"]), "end": int(s["end"]), "label": str(s.get("label", ""))}
           for s in segments]
    out.sort(key=lambda s: (s["start"], s["end"]))
    return out


def segment_at(segments: Sequence[Segment], step: int) -> int | None:
    """Index of the segment containing ``step`` (None when it lies outside every segment)."""
    for i, seg in enumerate(segments):
        if seg["start"] <= step < seg["end"]:
            return i
    return None


def free_range(segments: Sequence[Segment], step: int, num_steps: int) -> tuple[int, int] | None:
    """The gap between segments that contains ``step``: ``[previous end, next start)``; None
    when ``step`` is inside a segment or outside the episode."""
    if not 0 <= step < num_steps or segment_at(segments, step) is not None:
        return None
    low = max([s["end"] for s in segments if s["end"] <= step], default=0)
    high = min([s["start"] for s in segments if s["start"] > step], default=num_steps)
    return low, high


def add_segment(segments: Sequence[Segment], anchor: int, other: int, label: str,
                num_steps: int) -> tuple[list[Segment], int | None]:
    """Add the segment between ``anchor`` (where a drag began) and ``other`` (where it is now,
    either side), clamped to the gap between segments that holds ``anchor``.

    Returns:
        The new list and the index of the added segment (None, and the list unchanged, when
        ``anchor`` lies inside an existing segment or the range is empty).
    """
    anchor = max(0, min(int(anchor), num_steps - 1))
    start, end = sorted((anchor, int(other)))
    out = _copy(segments)
    gap = free_range(out, anchor, num_steps)
    if gap is None:
        return out, None
    start, end = max(start, gap[0]), min(end, gap[1])
    if end <= start:
        return out, None
    out.append({"start": start, "end": end, "label": label.strip()})
    out.sort(key=lambda s: s["start"])
    return out, next(i for i, s in enumerate(out) if s["start"] == start)


def split_at(segments: Sequence[Segment], step: int, num_steps: int
             ) -> tuple[list[Segment], int | None]:
    """A boundary at ``step`` (the keyboard's way to cut subtasks).

    Inside a segment (not at its first step) it is split in two, both keeping the label; in a
    gap a new unlabelled segment runs from ``step`` to the next segment (or the episode end).

    Returns:
        The new list and the index of the segment that now starts at ``step`` (None when
        nothing changed: ``step`` already starts a segment, or is outside the episode).
    """
    out = _copy(segments)
    i = segment_at(out, step)
    if i is not None:
        seg = out[i]
        if step == seg["start"]:
            return out, None
        out[i] = {**seg, "end": step}
        out.insert(i + 1, {"start": step, "end": seg["end"], "label": seg["label"]})
        return out, i + 1
    gap = free_range(out, step, num_steps)
    if gap is None:
        return out, None
    return add_segment(out, step, gap[1], "", num_steps)


def resize_segment(segments: Sequence[Segment], index: int, edge: str, step: int
                   ) -> list[Segment]:
    """Move the ``"start"`` or ``"end"`` edge of segment ``index`` to ``step``, clamped so the
    segment keeps at least one step and does not cross its neighbours."""
    out = _copy(segments)
    seg = out[index]
    if edge == "start":
        low = out[index - 1]["end"] if index > 0 else 0
        seg["start"] = max(low, min(int(step), seg["end"] - 1))
    elif edge == "end":
        high = out[index + 1]["start"] if index + 1 < len(out) else None
        end = max(seg["start"] + 1, int(step))
        seg["end"] = end if high is None else min(end, high)
    else:
        raise ValueError(f"edge must be 'start' or 'end', got {edge!r}")
    return out


def clamp_end(segments: Sequence[Segment], num_steps: int) -> list[Segment]:
    """The segments with their ends clamped to the episode (after a resize past the end)."""
    out = [s for s in _copy(segments) if s["start"] < num_steps]
    for s in out:
        s["end"] = min(s["end"], num_steps)
    return out


def move_segment(segments: Sequence[Segment], index: int, start: int, num_steps: int
                 ) -> list[Segment]:
    """Move segment ``index`` to begin at ``start`` (same length), stopping at its neighbours
    and the episode's ends."""
    out = _copy(segments)
    seg = out[index]
    length = seg["end"] - seg["start"]
    low = out[index - 1]["end"] if index > 0 else 0
    high = out[index + 1]["start"] if index + 1 < len(out) else num_steps
    start = max(low, min(int(start), high - length))
    seg["start"], seg["end"] = start, start + length
    return out


def relabel_segment(segments: Sequence[Segment], index: int, label: str) -> list[Segment]:
    out = _copy(segments)
    out[index]["label"] = label.strip()
    return out


def delete_segment(segments: Sequence[Segment], index: int) -> list[Segment]:
    out = _copy(segments)
    del out[index]
    return out


def boundaries(segments: Sequence[Segment]) -> list[int]:
    """Every step at which a segment starts or ends, sorted, without repeats."""
    return sorted({int(s["start"]) for s in segments} | {int(s["end"]) for s in segments})


def steps_labels(segments: Sequence[Segment], start: int, end: int
                 ) -> tuple[list[str], list[int]]:
    """Per step of ``[start, end)``: the label of the segment holding it ('' outside every
    segment) and that segment's index among the segments overlapping the range (-1 outside)."""
    labels = [""] * (end - start)
    index = [-1] * (end - start)
    k = 0
    for seg in _copy(segments):
        lo, hi = max(seg["start"], start), min(seg["end"], end)
        if hi <= lo:
            continue
        for step in range(lo, hi):
            labels[step - start] = seg["label"]
            index[step - start] = k
        k += 1
    return labels, index


def within(segments: Sequence[Segment], start: int, end: int) -> list[Segment]:
    """The segments clipped to ``[start, end)`` and renumbered from ``start`` (what an export
    of the trimmed steps holds)."""
    out = []
    for seg in _copy(segments):
        lo, hi = max(seg["start"], start), min(seg["end"], end)
        if hi > lo:
            out.append({"start": lo - start, "end": hi - start, "label": seg["label"]})
    return out
