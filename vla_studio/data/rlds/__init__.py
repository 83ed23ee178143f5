"""RLDS export: episode files -> a TFDS dataset directory that tfds, Octo and OpenVLA load.

Written without TensorFlow: the ``tf.train.Example`` protobuf wire format, TFRecord framing with
masked CRC-32C, and tfds's ``features.json`` / ``dataset_info.json`` are produced by this package.

Usage::

    from vla_studio.data.rlds import ExportOptions, RldsExporter
    report = RldsExporter(Path("datasets/pick"), Path("exports"),
                          ExportOptions(name="pick_cube", image_size=(224, 224),
                                        camera_map={"front": "image", "wrist": "wrist_image"},
                                        state_keys=("ee_pos", "ee_quat", "gripper"))).run()
"""

from vla_studio.data.rlds.exporter import (ExportCancelled, ExportProgress, ExportReport,
                                           RldsExporter, find_episode_files)
from vla_studio.data.rlds.naming import parse_camera_map, parse_state_keys
from vla_studio.data.rlds.plan import ExportError, ExportOptions, parse_image_size, snake_case

__all__ = [
    "ExportCancelled", "ExportError", "ExportOptions", "ExportProgress", "ExportReport",
    "RldsExporter", "find_episode_files", "parse_camera_map", "parse_image_size",
    "parse_state_keys", "snake_case",
]
