"""RLDS export: episode files -> a TFDS dataset directory that tfds, Octo and OpenVLA load.

Written without TensorFlow: the ``tf.train.Example`` protobuf wire format, TFRecord framing with
masked CRC-32C, and tfds's ``features.json`` / ``dataset_info.json`` are produced by this package.

Usage::

    from vla_studio.data.rlds import ExportOptions, RldsExporter
    report = RldsExporter(Path("datasets/pick"), Path("exports"),
                          ExportOptions(name="pick_cube", image_size=(224, 224))).run()
"""

from vla_studio.data.rlds.exporter import (ExportCancelled, ExportProgress, ExportReport,
                                           RldsExporter, find_episode_files)
from vla_studio.data.rlds.plan import ExportError, ExportOptions, parse_image_size, snake_case

__all__ = [
    "ExportCancelled", "ExportError", "ExportOptions", "ExportProgress", "ExportReport",
    "RldsExporter", "find_episode_files", "parse_image_size", "snake_case",
]
