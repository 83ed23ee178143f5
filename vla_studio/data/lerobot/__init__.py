"""LeRobotDataset v3 export (see :mod:`vla_studio.data.lerobot.exporter`)."""

from vla_studio.data.lerobot.exporter import (LeRobotExporter, LeRobotOptions, LeRobotProgress,
                                              LeRobotReport, resample)

__all__ = ["LeRobotExporter", "LeRobotOptions", "LeRobotProgress", "LeRobotReport", "resample"]
