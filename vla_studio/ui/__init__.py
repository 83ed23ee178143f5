"""The Qt layer: the only package that imports PySide6 or pyqtgraph.

Widgets are views of core objects (Station, Session, ControlLoop snapshots, EventBus); they display
state and forward the operator's intent, and never own robot I/O or block on the disk or a model.
"""

from vla_studio.ui.binding_workarounds import make_singletons_immortal

make_singletons_immortal()  # PySide6 6.12 on CPython 3.11 drops references to None/True/False
