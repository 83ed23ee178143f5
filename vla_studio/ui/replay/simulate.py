"""The replay view's simulator actions (X): re-execute the episode's recorded actions in the
simulator on the ``replay-sim`` thread (:class:`~vla_studio.ui.replay.feeds.SimJob`), then show
the re-executed camera beside the recorded one, plot the end-effector divergence and mark the
moment the task was accomplished. Mixed into :class:`~vla_studio.ui.replay.view.ReplayView`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vla_studio.data.replay_episode import TimelineEvent
from vla_studio.ui.replay.panes import ReplayPane


class SimActions:
    """Needs the view's ``episode``, ``reader``, ``grid``, ``plots``, ``timeline``, ``events``,
    ``sim``, ``sim_job``, ``sim_button``, ``_sim_timer``, ``say``, ``seek``."""

    sim: dict[Path, Any]

    def reexecute(self) -> None:
        """Re-execute the recorded actions in the simulator (a background job)."""
        from vla_studio.sim.reexecute import can_reexecute

        ep = self.episode
        if ep is None:
            self.say("Open an episode first.", True)
            return
        why = can_reexecute({**ep.attrs, "station_profile": ep.profile_text})
        if why:
            self.say(f"Cannot re-execute: {why}.", True)
            return
        cameras = tuple(c for c in ep.cameras if c == "front") or tuple(ep.cameras[:1])
        if self.sim_job.start(ep.path, cameras):
            self.sim_button.setEnabled(False)
            self._sim_timer.start()
            self.say("Re-executing the recorded actions in the simulator…")

    def _sim_progress(self) -> None:
        done, total = self.sim_job.progress
        if total:
            self.say(f"Re-executing in the simulator: step {done} of {total}…")

    def _sim_done(self, path: Path, outcome) -> None:
        self._sim_timer.stop()
        self.sim_button.setEnabled(True)
        if not outcome.ok:
            self.say(f"Re-execution failed: {outcome.error}", True)
            return
        result = outcome.value
        self.sim[path] = result
        if self.episode is not None and self.episode.path == path:
            self._show_sim(result)
            self.seek(self.target)

    def _show_sim(self, result) -> None:
        ep = self.episode
        for cam, frames in result.frames.items():
            if frames and f"{cam}:sim" not in self.grid.panes:
                w, h = self.reader.source.frame_size(cam) if self.reader else (320, 240)
                pane = ReplayPane(f"{cam}:sim", f"{cam} · re-executed in the simulator", (w, h))
                self.grid.add_pane(pane, after=cam)
        self.plots.set_divergence(ep.times[: result.steps], result.divergence_mm)
        self.plots.set_trim(self._trim_span())
        if result.success_step is not None:
            ep.extra_events = [TimelineEvent(
                "success", result.success_step, result.success_step + 1,
                f"task accomplished (simulator, step {result.success_step})")]
            self.events = ep.events(self.reader.source if self.reader else None)
            self.timeline.set_annotations(ep.segments(), ep.trim(), self.events)
        moment = (f"; task accomplished at {ep.time_of(result.success_step):.2f} s"
                  if result.success_step is not None else "; the task was never accomplished")
        self.say(f"Simulator: end-effector divergence mean {result.mean_mm:.2f} mm, max "
                 f"{result.max_mm:.2f} mm over {result.steps} steps{moment}.")

    def _paint_sim(self, pane: ReplayPane, step: int) -> None:
        result = self.sim.get(self.episode.path) if self.episode else None
        cam = pane.key.removesuffix(":sim")
        frames = result.frames.get(cam, []) if result is not None else []
        if step >= len(frames) or not frames[step]:
            pane.show_frame(step, None)
            return
        bgr = cv2.imdecode(np.frombuffer(frames[step], np.uint8), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        pane.show_frame(step, rgb, f"Δ {result.divergence_mm[step]:.2f} mm")
