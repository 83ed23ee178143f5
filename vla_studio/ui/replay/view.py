"""The Replay view: one recorded episode, frame-accurate, with its plots and annotations.

```
 header: instruction · file · duration · outcome           [◀ P] [N ▶] [Re-execute (X)]
 ┌ front ──────────┐┌ wrist ─────────┐┌ wrist depth ─┐   ┌ annotations ───────────┐
 │                 ││                ││              │   │ instructions, outcome, │
 └─────────────────┘└────────────────┘└──────────────┘   │ quality, tags, trim,   │
 ⏮ ◆◀ ◀◀ ◀| ▶ |▶ ▶▶ ▶◆ ⏭  1×   2.35 / 5.00 s  step 48/101  │ segments, notes, log   │
 timeline: events, subtask segments, trim, playhead                                  │
 plots: action (sent / requested), state, who drove (+ confidence, divergence)       │
```
Seeking asks the :class:`~vla_studio.data.frame_reader.FrameReader` for the step: a cached step
is painted at once, otherwise its frames arrive from the ``replay-frames`` thread through a
queued signal; panes, plots, timeline and position all move when the frames are painted, so
they never disagree. While playing, the reader decodes ahead; a step the display had time for
but could not paint counts as a dropped display frame (:attr:`ReplayView.stats`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSplitter, QStackedWidget,
                               QVBoxLayout, QWidget)

from vla_studio.data.episode_file import EpisodeFileError
from vla_studio.data.frame_reader import FrameReader, FrameSet
from vla_studio.data.replay_episode import ReplayEpisode, TimelineEvent
from vla_studio.ui.replay.annotate import AnnotationActions
from vla_studio.ui.replay.annotation_panel import AnnotationPanel
from vla_studio.ui.replay.simulate import SimActions
from vla_studio.ui.replay.edits import AnnotationEditor
from vla_studio.ui.replay.feeds import FrameFeed, SimJob
from vla_studio.ui.replay.panes import PaneGrid, ReplayPane
from vla_studio.ui.replay.plots import ReplayPlots
from vla_studio.ui.replay.timeline import TimelineWidget
from vla_studio.ui.replay.transport import DISPLAY_HZ, PlaybackClock, TransportBar
from vla_studio.ui.widgets.elided_label import ElidedLabel

log = logging.getLogger(__name__)
SPLIT_KEY = "replay/pictures_and_plots"
PANES_SHARE = 0.44  # of the view's height, at first: the pictures above, the plots below
PANEL_SHARE, PANEL_MIN_PX = 0.21, 390  # the annotation panel's width
EMPTY_TEXT = ("<h3>Replay and annotate</h3><p>Double-click an episode in the <b>Episodes</b> "
              "list (or select it and press <b>Enter</b>) to replay it here.</p><p>Keys: "
              "<b>Space</b> play · <b>J K L</b> · <b>← →</b> step · <b>[ ]</b> trim · "
              "<b>S F U</b> outcome · <b>1–5</b> quality · <b>B</b> segment · <b>N P</b> next / "
              "previous episode · <b>?</b> all keys</p>")


class ReplayView(QWidget, AnnotationActions, SimActions):
    """Replays and annotates one episode at a time.

    Signals:
        episode_opened(object): the Path of the episode now shown.
        annotations_changed(object): Paths whose annotations were edited (the Episodes list
            refreshes).

    Args:
        neighbour: ``(path, +1 | -1) -> Path | None``, the next or previous episode in the
            Episodes list's order (N / P); set by the window.
    """

    episode_opened = Signal(object)
    annotations_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("replayView")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.episode: ReplayEpisode | None = None
        self.reader: FrameReader | None = None
        self.events: list[TimelineEvent] = []
        self.step = 0  # the step painted last
        self.target = 0  # the step asked for
        self.stats = {"shown": 0, "dropped": 0}
        self.neighbour: Callable[[Path, int], Path | None] | None = None
        self.sim: dict[Path, Any] = {}  # episode -> Reexecution
        self._captures: dict[str, np.ndarray] = {}
        self.editor = AnnotationEditor(self)
        self.editor.changed.connect(self._annotations_changed)
        self.editor.message.connect(self.say)
        self.feed = FrameFeed(self)
        self.feed.connect_to(self._frames_ready)
        self.clock = PlaybackClock(self)
        self.clock.due.connect(self._play_due)
        self.clock.state_changed.connect(self._clock_changed)
        self.sim_job = SimJob(self)
        self.sim_job.done.connect(self._sim_done)
        self._sim_timer = QTimer(self)
        self._sim_timer.setInterval(200)
        self._sim_timer.timeout.connect(self._sim_progress)
        self._build()

    # ----- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        self.title = ElidedLabel()
        self.title.setObjectName("replayTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.meta = ElidedLabel()
        self.meta.setObjectName("mutedText")
        self.message = QLabel()
        self.message.setObjectName("mutedText")
        self.message.setWordWrap(True)
        self.prev_button = QPushButton("◀ Previous  (P)")
        self.next_button = QPushButton("Next  (N) ▶")
        self.sim_button = QPushButton("Re-execute in simulator  (X)")
        for button, method in ((self.prev_button, self.previous_episode),
                               (self.next_button, self.next_episode),
                               (self.sim_button, self.reexecute)):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(method)
        head = QVBoxLayout()
        head.setSpacing(0)
        head.addWidget(self.title)
        head.addWidget(self.meta)
        header = QHBoxLayout()
        header.addLayout(head, 1)
        header.addWidget(self.prev_button)
        header.addWidget(self.next_button)
        header.addWidget(self.sim_button)

        self.grid = PaneGrid()
        self.transport = TransportBar()
        self.transport.clicked.connect(lambda name: getattr(self, name)())
        self.transport.speed_chosen.connect(lambda s: self.clock.set_speed(s, self._now()))
        self.timeline = TimelineWidget()
        self.timeline.seek_requested.connect(self.seek)
        self.timeline.segments_edited.connect(self.edit_segments)
        self.timeline.label_requested.connect(self.label_segment)
        self.plots = ReplayPlots()
        self.plots.seek_requested.connect(lambda t: self.seek(self.episode.step_at(t))
                                          if self.episode else None)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.setSpacing(3)
        lower_layout.addWidget(self.transport)
        lower_layout.addWidget(self.timeline)
        lower_layout.addWidget(self.plots, 1)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.grid)
        left.addWidget(lower)
        left.setStretchFactor(0, 5)
        left.setStretchFactor(1, 4)
        left.setChildrenCollapsible(False)
        left.splitterMoved.connect(lambda *_: QSettings().setValue(SPLIT_KEY, left.saveState()))
        self._left = left
        self._sized = False
        self.panel = AnnotationPanel()
        self.panel.outcome_chosen.connect(self.set_outcome)
        self.panel.quality_chosen.connect(self.set_quality)
        self.panel.notes_saved.connect(self.save_notes)
        self.panel.instructions_requested.connect(self.edit_instructions)
        self.panel.tags_requested.connect(self.edit_tags)
        self.panel.clear_trim_requested.connect(self.clear_trim)
        self.panel.segment_clicked.connect(
            lambda i: self.seek(self.episode.segments()[i]["start"]) if self.episode else None)
        for button in self.panel.findChildren(QPushButton):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space must not click them
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.panel)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setSizes([1200, 330])
        self._split = split
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)
        empty = QLabel(EMPTY_TEXT)
        empty.setObjectName("replayEmpty")
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty.setWordWrap(True)
        self.pages = QStackedWidget()
        self.pages.addWidget(empty)
        self.pages.addWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.pages)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._sized:  # the pictures get the larger share, or the height the user chose
            self._sized = True
            state = QSettings().value(SPLIT_KEY)
            if not (isinstance(state, QByteArray) and self._left.restoreState(state)):
                h = max(400, self._left.height())
                self._left.setSizes([int(h * PANES_SHARE), int(h * (1 - PANES_SHARE))])
            width = max(800, self._split.width())
            panel = max(PANEL_MIN_PX, int(width * PANEL_SHARE))
            self._split.setSizes([width - panel, panel])

    def say(self, text: str, error: bool = False) -> None:
        """A one-line message under the header (red for an error)."""
        self.message.setObjectName("errorText" if error else "mutedText")
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setText(text)

    # ----- opening ---------------------------------------------------------------------------
    def open_path(self, path: Path) -> bool:
        """Open episode ``path`` (the frames decode lazily); False, with the reason shown,
        when it cannot be read."""
        path = Path(path)
        try:
            episode = ReplayEpisode(path)
            source = episode.open_frames()
        except (EpisodeFileError, OSError, KeyError, ValueError) as exc:
            self.say(f"Cannot replay {path.name}: {exc}", True)
            return False
        self.close_episode()
        self.episode = episode
        self.reader = FrameReader(source, episode.step_times, self.feed.emit)
        self._captures = {cam: source.capture_times(cam) for cam in source.cameras}
        self.events = episode.events(source)
        panes = [ReplayPane(cam, cam, source.frame_size(cam)) for cam in source.cameras]
        panes += [ReplayPane(f"{cam}:depth", f"{cam} depth", source.frame_size(cam))
                  for cam in source.depth_cameras]
        self.grid.set_panes(panes)
        for pane in panes:
            pane.resized.connect(self._pane_resized)
        self.reader.start()
        self.clock.duration = episode.duration_s
        self.timeline.set_episode(episode.times, self.events, episode.segments(),
                                  episode.trim())
        self.plots.set_episode(episode)
        self.plots.set_trim(self._trim_span())
        if path in self.sim:
            self._show_sim(self.sim[path])
        self._show_labels()
        self.stats = {"shown": 0, "dropped": 0}
        self.pages.setCurrentIndex(1)
        self.say("")
        self.step = self.target = -1
        self.seek(0)
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        self.episode_opened.emit(path)
        return True

    def close_episode(self) -> None:
        """Stop playing and release the episode (the decode thread is joined)."""
        self.clock.stop()
        if self.reader is not None:
            self.reader.stop()
            self.reader = None
        self.episode = None

    def shutdown(self) -> None:
        """The window closes: every thread of the view is stopped and joined."""
        self.close_episode()
        self.sim_job.stop()

    def _pane_resized(self, key: str, size: tuple[int, int]) -> None:
        if self.reader is not None and not key.endswith(":sim"):
            self.reader.set_display_size(key, size)

    def _show_labels(self) -> None:
        ep = self.episode
        if ep is None:
            return
        texts = ep.instructions()
        self.title.setText(texts[0] if texts else "(no instruction)")
        outcome = {True: "✓ success", False: "✗ failure", None: "outcome unknown"}[ep.success()]
        flags = ", ".join(str(f) for f in ep.attrs.get("flags") or [])
        parts = [ep.path.name, str(ep.attrs.get("created", ""))[:19].replace("T", " "),
                 f"{ep.duration_s:.1f} s", f"{ep.num_steps} steps at {ep.rate_hz:g} Hz", outcome]
        if ep.annotations.get("quality"):
            parts.append(f"quality {ep.annotations['quality']}")
        if flags:
            parts.append(flags)
        self.meta.setText(" · ".join(parts))
        self.panel.show_episode(ep)

    def _trim_span(self) -> tuple[float, float] | None:
        ep = self.episode
        trim = ep.trim() if ep else None
        if ep is None or trim is None:
            return None
        end = ep.time_of(trim[1]) if trim[1] < ep.num_steps else ep.duration_s + 1.0 / ep.rate_hz
        return ep.time_of(trim[0]), end

    def _annotations_changed(self, paths: list[Path]) -> None:
        self.annotations_changed.emit(paths)
        ep = self.episode
        if ep is None or ep.path not in paths:
            return
        ep.reload_annotations()
        self.events = ep.events(self.reader.source if self.reader else None)
        self.timeline.set_annotations(ep.segments(), ep.trim(), self.events)
        self.plots.set_trim(self._trim_span())
        self._show_labels()

    # ----- seeking and painting ----------------------------------------------------------------
    def seek(self, step: int, direction: int = 0) -> None:
        """Show ``step``: at once from the cache, else as soon as its frames are decoded."""
        if self.episode is None or self.reader is None:
            return
        step = max(0, min(int(step), self.episode.num_steps - 1))
        self.target = step
        self.timeline.set_playhead(step)
        cached = self.reader.cached(step)
        self.reader.request(step, direction)  # read-ahead, or the decode when not cached
        if cached is not None:
            self._paint(cached)

    def _frames_ready(self, frames: FrameSet) -> None:
        if frames.step == self.target and self.episode is not None:
            self._paint(frames)

    def _paint(self, frames: FrameSet) -> None:
        ep = self.episode
        step = frames.step
        if self.clock.playing and self.step >= 0:
            skipped = abs(step - self.step) - 1
            # Count only steps the display had time for (at 4x of 30 Hz, skipping is the rule).
            if skipped > 0 and self.clock.speed * ep.rate_hz <= 0.9 * DISPLAY_HZ:
                self.stats["dropped"] += skipped
        self.step = step
        self.stats["shown"] += 1
        tick = ep.step_times[step]
        for key, pane in self.grid.panes.items():
            if key.endswith(":sim"):
                self._paint_sim(pane, step)
            elif key.endswith(":depth"):
                cam = key.removesuffix(":depth")
                span = self.reader.depth_range_m(cam) if self.reader else None
                pane.show_frame(step, frames.depth.get(cam),
                                f"{span[0]:.2f}–{span[1]:.2f} m" if span else "")
            else:
                src = frames.source_steps.get(key, step)
                captured = self._captures[key][src] if src >= 0 else np.nan
                age = (tick - captured) * 1000.0
                note = ("" if not np.isfinite(age) else f"{age:.0f} ms old" if age >= 0.5
                        else f"captured {-age:.0f} ms after the tick" if age < -0.5 else "")
                detail = (f"{key}: frame captured {age:.1f} ms before this tick"
                          + (f", stored with step {src} (it arrived later)" if src != step
                             else "") if np.isfinite(age) else f"{key}: no frame")
                pane.show_frame(step, frames.color.get(key), note, detail)
        t = ep.time_of(step)
        self.plots.set_playhead(t)
        self.timeline.set_playhead(step)
        self.transport.show_position(t, ep.duration_s, step, ep.num_steps)

    # ----- transport -------------------------------------------------------------------------
    def _now(self) -> float:
        return self.episode.time_of(self.step) if self.episode else 0.0

    def _play_due(self, t: float) -> None:
        if self.episode is not None:
            self.seek(self.episode.step_at(t), self.clock.direction)

    def _clock_changed(self) -> None:
        self.transport.show_state(self.clock.playing, self.clock.direction, self.clock.speed)

    def toggle_play(self) -> None:
        if self.clock.playing:
            self.clock.stop()
        elif self.episode is not None:
            self.clock.play(self._now(), 1)

    def pause(self) -> None:
        self.clock.stop()

    def play_forward(self) -> None:
        if self.episode is not None:
            self.clock.faster(1, self._now())

    def play_backward(self) -> None:
        if self.episode is not None:
            self.clock.faster(-1, self._now())

    def _step_by(self, steps: int) -> None:
        self.clock.stop()
        self.seek(self.target + steps)

    def step_forward(self) -> None:
        self._step_by(1)

    def step_back(self) -> None:
        self._step_by(-1)

    def second_forward(self) -> None:
        if self.episode is not None:
            self.clock.stop()
            self.seek(self.episode.step_at(self.episode.time_of(self.target) + 1.0))

    def second_back(self) -> None:
        if self.episode is not None:
            self.clock.stop()
            self.seek(self.episode.step_at(self.episode.time_of(self.target) - 1.0 + 1e-9))

    def go_start(self) -> None:
        self._step_by(-self.target)

    def go_end(self) -> None:
        if self.episode is not None:
            self._step_by(self.episode.num_steps - 1 - self.target)

    def _jump_event(self, direction: int) -> None:
        if self.episode is None:
            return
        steps = self.episode.event_steps(self.events)
        later = [s for s in steps if (s - self.target) * direction > 0]
        if not later:
            self.say("No further event in this direction.")
            return
        self._step_by((min(later) if direction > 0 else max(later)) - self.target)

    def next_event(self) -> None:
        self._jump_event(1)

    def previous_event(self) -> None:
        self._jump_event(-1)

    # ----- episodes, undo --------------------------------------------------------------------
    def _neighbour(self, direction: int) -> None:
        if self.episode is None or self.neighbour is None:
            self.say("Open an episode from the Episodes list first.", True)
            return
        path = self.neighbour(self.episode.path, direction)
        if path is None:
            self.say("This is the " + ("last" if direction > 0 else "first") +
                     " episode of the Episodes list (its filter and sort).")
            return
        self.open_path(path)

    def next_episode(self) -> None:
        self._neighbour(1)

    def previous_episode(self) -> None:
        self._neighbour(-1)

    def undo(self) -> None:
        self.editor.undo()

    def redo(self) -> None:
        self.editor.redo()
