"""The policy panel's Load box: what to load (a file, a folder, a recent one, a server, the
untrained reference VLA), how far to trust it, where to run it; Load / Unload; its spec.

A view only: :class:`PolicyLoadBox` emits ``load_requested`` with a :class:`LoadRequest` and the
panel runs the load on its worker thread; the box shows "Loading…", the spec, or the one-line
error next to the button. Recent sources are kept in ``QSettings`` (``policy/recent``); an API key
never is (it is typed for each session, or given to ``vla-studio serve`` from the environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget)

from vla_studio.policies.errors import PolicyError
from vla_studio.policies.loaders import (EXPORTED, FORMATS, NATIVE, REMOTE, TORCH_WEIGHTS,
                                         parse_source)
from vla_studio.policies.native import CONFIG_FILE

RECENT_KEY = "policy/recent"
SERVER_KEY = "policy/server_url"
RECENT_MAX = 8
DEFAULT_SERVER = "ws://127.0.0.1:8000"
_DESCRIPTION = {kind: (text, trust) for kind, text, trust in FORMATS}
# File dialog filters, one per loadable file kind, each with its trust label.
_FILTERS = ((NATIVE, f"{CONFIG_FILE}"), (TORCH_WEIGHTS, "*.pt"), (EXPORTED, "*.pt2"))


@dataclass(frozen=True)
class LoadRequest:
    """What the operator asked to load.

    Attributes:
        source: a path, ``plugin:NAME``, ``ws://...`` or ``untrained``.
        api_key: for a server ("" = none).
        trusted: the operator vouches for a file that can run code on load (``.pt2``).
        where: ``child`` (default) or ``in-process`` (debugging).
    """

    source: str
    api_key: str = ""
    trusted: bool = False
    where: str = "child"


def file_filters() -> list[str]:
    """The load dialog's filters: each format's description and its trust label."""
    return [f"{_DESCRIPTION[kind][0]} — {_DESCRIPTION[kind][1]} ({pattern})"
            for kind, pattern in _FILTERS] + ["All files (*)"]


def format_label(source: str) -> tuple[str, str]:
    """(``"checkpoint folder … · safe"``, trust) for ``source``; ("", "") when unrecognised."""
    try:
        kind = parse_source(source).kind
    except PolicyError:
        return "", ""
    text, trust = _DESCRIPTION.get(kind, ("", ""))
    return (f"{text} · {trust}" if text else ""), trust


class PolicyLoadBox(QGroupBox):
    """Source, server, trust and placement fields with Load / Unload (see the module docstring).

    Signals:
        load_requested(object): a LoadRequest.
        unload_requested(): the operator asked to unload the policy.
    """

    load_requested = Signal(object)
    unload_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Policy", parent)
        settings = QSettings()
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.setAccessibleName("Policy source")
        self.source.lineEdit().setPlaceholderText("checkpoint folder, .pt/.pt2, plugin:NAME, "
                                                  "ws://host:port or untrained")
        self.source.addItems(self.recent())
        self.source.setCurrentText("")
        self.source.currentTextChanged.connect(self._source_changed)
        self.browse = QPushButton("Browse…")
        self.browse.setToolTip("Pick a checkpoint: a folder's config.json, a .pt or a .pt2 file")
        self.browse.clicked.connect(self.choose_file)
        self.server = QLineEdit(str(settings.value(SERVER_KEY, DEFAULT_SERVER) or DEFAULT_SERVER))
        self.server.setAccessibleName("Policy server URL")
        self.use_server = QPushButton("Use")
        self.use_server.setToolTip("Load from this openpi-protocol server (vla-studio serve)")
        self.use_server.clicked.connect(lambda: self.source.setCurrentText(self.server.text()))
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("API key")
        self.api_key.setToolTip("Only if the server needs one; it is never stored")
        self.api_key.setAccessibleName("API key")
        self.where = QComboBox()
        self.where.addItem("child process", "child")
        self.where.addItem("this process (debug)", "in-process")
        self.where.setToolTip("A child process (default) keeps a crashing or hung model away "
                              "from the window; in this process is for debugging only")
        self.trusted = QCheckBox("trusted file")
        self.trusted.setToolTip("A .pt2 program can run code when it is loaded: tick this only "
                                "for a file whose origin you trust")
        self.trusted.setEnabled(False)
        self.format = QLabel()
        self.format.setObjectName("policyFormat")
        self.format.setWordWrap(True)
        self.load_button = QPushButton("Load")
        self.load_button.setObjectName("policyLoad")
        self.load_button.clicked.connect(self.request_load)
        self.unload_button = QPushButton("Unload")
        self.unload_button.clicked.connect(self.unload_requested.emit)
        self.state = QLabel("No policy loaded.")
        self.state.setObjectName("policyLoadState")
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        self.spec = QLabel()
        self.spec.setObjectName("policySpec")
        self.spec.setWordWrap(True)

        form = QFormLayout(self)
        self.form = form
        form.setVerticalSpacing(4)
        row = QHBoxLayout()
        row.addWidget(self.source, 1)
        row.addWidget(self.browse)
        form.addRow("Source", row)
        form.addRow("", self.format)
        server_row = QHBoxLayout()
        server_row.addWidget(self.server, 3)
        server_row.addWidget(self.api_key, 2)
        server_row.addWidget(self.use_server)
        form.addRow("Server", server_row)
        where_row = QHBoxLayout()
        where_row.addWidget(self.where, 1)
        where_row.addWidget(self.trusted)
        form.addRow("Run in", where_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.unload_button)
        buttons.addWidget(self.state, 1)
        form.addRow(buttons)
        form.addRow(self.error)
        form.addRow(self.spec)
        # Rows only needed to choose a policy: folded away once one is loaded (the run needs
        # the room), unfolded by "Change…".
        self._choice_rows = (1, 2, 3)
        self.choosing = True
        self.show_state(loaded=False)

    # ----- choosing ------------------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = QSettings().value(RECENT_KEY, [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [str(v) for v in items if str(v).strip()][:RECENT_MAX]

    def remember(self, source: str) -> None:
        """Put ``source`` first in the recent list (a loaded one)."""
        items = [source] + [s for s in self.recent() if s != source]
        QSettings().setValue(RECENT_KEY, items[:RECENT_MAX])
        if source.startswith(("ws://", "wss://")):
            QSettings().setValue(SERVER_KEY, source)
        current = self.source.currentText()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItems(items[:RECENT_MAX])
        self.source.setCurrentText(current)
        self.source.blockSignals(False)

    def choose_file(self) -> None:
        start = self.source.currentText() or str(Path.home())
        path, chosen = QFileDialog.getOpenFileName(self, "Load a policy", start,
                                                   ";;".join(file_filters()))
        if path:
            # A checkpoint folder is chosen by its config.json.
            p = Path(path)
            self.source.setCurrentText(str(p.parent) if p.name == CONFIG_FILE else str(p))

    def _source_changed(self, text: str) -> None:
        label, trust = format_label(text.strip()) if text.strip() else ("", "")
        self.format.setText(label)
        needs_trust = trust == "trusted files only"
        self.trusted.setEnabled(needs_trust)
        if not needs_trust:
            self.trusted.setChecked(False)
        is_remote = text.strip().startswith(("ws://", "wss://"))
        self.where.setEnabled(not is_remote)  # a server runs the model where it is

    def request_load(self) -> None:
        if not self.choosing:  # "Change…": show the choices first
            self.show_choices(True)
            return
        source = self.source.currentText().strip()
        if not source:
            self.show_error("Type or pick a policy first (Browse…, a server URL, or untrained).")
            return
        kind = ""
        try:
            kind = parse_source(source).kind
        except PolicyError as exc:
            self.show_error(str(exc))
            return
        if kind == EXPORTED and not self.trusted.isChecked():
            self.show_error("A .pt2 program can run code when loaded: tick 'trusted file' only "
                            "if you know where it came from.")
            return
        self.show_error("")
        self.load_requested.emit(LoadRequest(
            source, self.api_key.text().strip() if kind == REMOTE else "",
            self.trusted.isChecked(), str(self.where.currentData() or "child")))

    # ----- showing -----------------------------------------------------------------------------
    def show_loading(self, source: str) -> None:
        self.state.setText(f"Loading {Path(source).name or source}…")
        self.load_button.setEnabled(False)
        self.unload_button.setEnabled(False)
        self.show_error("")

    def show_choices(self, on: bool) -> None:
        """Unfold (or fold) the rows that choose a policy."""
        self.choosing = on
        for row in self._choice_rows:
            self.form.setRowVisible(row, on)
        self.browse.setVisible(on)
        self.load_button.setText("Load" if on else "Change…")

    def show_state(self, loaded: bool, host: str = "", spec_text: str = "") -> None:
        self.load_button.setEnabled(True)
        self.show_choices(not loaded)
        self.unload_button.setEnabled(loaded)
        self.state.setText(f"Loaded · {host}" if loaded else "No policy loaded.")
        self.state.setToolTip(host)
        self.spec.setText(spec_text)
        self.spec.setVisible(bool(spec_text))

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))
