"""The Replay mode of the main window: replay, annotate and re-execute recorded episodes.

:mod:`~vla_studio.ui.replay.mode` adds the Live / Replay tabs; :class:`~.view.ReplayView` is the
view of one :class:`~vla_studio.data.replay_episode.ReplayEpisode` (panes, transport, timeline,
plots, annotations); edits go through :mod:`vla_studio.data.annotations` on a QUndoStack
(:mod:`~.edits`).
"""
