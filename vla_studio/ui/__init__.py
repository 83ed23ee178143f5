"""The Qt layer: the only package that imports PySide6 or pyqtgraph.

Widgets are views of core objects (Station, Session, ControlLoop snapshots, EventBus); they display
state and forward the operator's intent, and never own robot I/O or block on the disk or a model.
"""
