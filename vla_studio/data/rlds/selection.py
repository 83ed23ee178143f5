"""Which episodes an export keeps, by their annotations: outcome and quality filters, and what
each exported episode's annotations changed (recorded in ``metadata.json``).

The labels used are the merged ones (the annotations sidecar first, then the recording), so an
edit made in the replay view or with ``vla-studio dataset label`` decides, never the value
sealed into the file.
"""

from __future__ import annotations

import collections
from typing import Any

from vla_studio.data.rlds.episode_source import EpisodeSummary
from vla_studio.data.rlds.errors import ExportError

OUTCOMES = ("success", "failure", "unknown")


def outcome_name(success: bool | None) -> str:
    return {True: "success", False: "failure", None: "unknown"}[success]


def parse_outcomes(text: str) -> tuple[str, ...]:
    """``"success,unknown"`` -> ``("success", "unknown")``.

    Raises:
        ExportError: an unknown outcome, or none at all.
    """
    items = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [p for p in items if p not in OUTCOMES]
    if bad or not items:
        raise ExportError(f"--outcomes {text!r} is not understood: give one or more of "
                          f"{', '.join(OUTCOMES)}, comma separated (e.g. success,unknown)")
    return items


def check_filters(outcomes: tuple[str, ...] | None, min_quality: int | None) -> None:
    """Raise :class:`ExportError` for an outcome filter or quality threshold that is not valid."""
    if outcomes is not None:
        bad = [o for o in outcomes if o not in OUTCOMES]
        if bad or not outcomes:
            raise ExportError(f"outcomes {list(outcomes)} must be one or more of "
                              f"{', '.join(OUTCOMES)}")
    if min_quality is not None and (isinstance(min_quality, bool) or
                                    not 1 <= int(min_quality) <= 5):
        raise ExportError(f"minimum quality {min_quality} must be a whole number from 1 to 5")


def select(summaries: list[EpisodeSummary], outcomes: tuple[str, ...],
           min_quality: int | None) -> tuple[list[EpisodeSummary], dict[str, int], int]:
    """The episodes that pass the filters.

    Episodes without a quality rating pass a quality threshold (it leaves out the episodes
    rated *below* it; an unrated one was never judged low).

    Returns:
        The kept episodes, the count left out per reason (``"outcome failure"``,
        ``"quality below 3"``), and how many were left out for their outcome.
    """
    kept: list[EpisodeSummary] = []
    left_out: collections.Counter[str] = collections.Counter()
    by_outcome = 0
    for s in summaries:
        outcome = outcome_name(s.success)
        if outcome not in outcomes:
            left_out[f"outcome {outcome}"] += 1
            by_outcome += 1
        elif min_quality is not None and s.quality is not None and s.quality < min_quality:
            left_out[f"quality below {min_quality}"] += 1
        else:
            kept.append(s)
    return kept, dict(left_out), by_outcome


def nothing_left_message(left_out: dict[str, int], outcomes: tuple[str, ...],
                         min_quality: int | None, success_only: bool = False) -> str:
    """Why nothing passes the filters, and which option to change."""
    by_outcome = sum(n for r, n in left_out.items() if r.startswith("outcome"))
    wanted = "successful" if outcomes == ("success",) else " or ".join(outcomes)
    parts = [f"{by_outcome} episode(s) not marked {wanted}"] if by_outcome else []
    parts += [f"{n} episode(s) rated {r.removeprefix('quality ')}"
              for r, n in sorted(left_out.items()) if r.startswith("quality")]
    hints = []
    if any(r.startswith("outcome") for r in left_out):
        hints.append("drop --success-only" if success_only else
                     f"widen --outcomes (now {','.join(outcomes)})")
    if min_quality is not None and any(r.startswith("quality") for r in left_out):
        hints.append(f"lower --min-quality (now {min_quality})")
    return "; ".join(parts) + (f" ({' or '.join(hints)} to include them)" if hints else "")


def describe_left_out(reason: str) -> str:
    """A filter reason as people read it: ``"outcome failure"`` -> ``"marked failure"``."""
    return {"outcome success": "marked successful", "outcome failure": "marked failure",
            "outcome unknown": "outcome not marked"}.get(
        reason, reason.replace("quality below", "rated below"))


def applied_edits(s: EpisodeSummary, segments_exported: list[dict[str, Any]] | None
                  ) -> dict[str, Any]:
    """What the annotations changed in one exported episode, for ``metadata.json``: each
    annotated key with the recorded and the exported value (only keys that were annotated)."""
    ann = s.annotations
    edits: dict[str, Any] = {}
    if "instructions" in ann:
        edits["instructions"] = {"recorded": list(s.recorded_instructions),
                                 "exported": list(s.instructions)}
    if "success" in ann:
        edits["success"] = {"recorded": s.recorded_success, "exported": s.success,
                            "by": str(ann.get("success_source", ""))}
    if "trim" in ann:
        edits["trim"] = {"recorded_steps": s.num_steps, "exported": list(s.trim)}
    if "segments" in ann:
        edits["segments"] = {"count": len(ann["segments"]),
                             "exported": segments_exported if segments_exported is not None
                             else "not exported (pass --subtasks)"}
    for key in ("quality", "tags", "notes"):
        if key in ann:
            edits[key] = ann[key]
    return edits
