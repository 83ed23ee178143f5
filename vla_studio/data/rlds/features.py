"""The tfds feature schema of an export, and the two JSON files tfds reads.

``features.json`` is tfds's proto-JSON serialization of a ``FeaturesDict``; ``dataset_info.json``
is a ``DatasetInfo`` proto. tfds rejects unknown keys in either, so only fields tfds itself writes
appear here (our own metadata goes to ``metadata.json``). Every step feature has a fully static
shape: ``Dataset`` stores each step leaf as one flat list over all steps and reshapes it on read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union

_CLASS = "tensorflow_datasets.core.features."
_DTYPES = ("bool", "int32", "int64", "float32", "uint8", "uint16", "string")


@dataclass(frozen=True)
class TensorFeature:
    """A fixed-shape numeric tensor (tfds ``Tensor``; ``Scalar`` when ``shape == ()``)."""

    dtype: str
    shape: tuple[int, ...] = ()
    doc: str = ""
    value_range: str = ""  # tfds's valueRange: the values' range in words, e.g. "0 or 1"

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(_DTYPES)}")
        if any(d <= 0 for d in self.shape):
            raise ValueError(f"shape {self.shape} must be fully static and non-empty")

    def to_json(self) -> dict[str, Any]:
        kind = "scalar.Scalar" if not self.shape else "tensor_feature.Tensor"
        shape: dict[str, Any] = {"dimensions": [str(d) for d in self.shape]} if self.shape else {}
        out: dict[str, Any] = {"pythonClassName": _CLASS + kind,
                               "tensor": {"dtype": self.dtype, "encoding": "none", "shape": shape}}
        return _with_doc(out, self.doc, self.value_range)


@dataclass(frozen=True)
class TextFeature:
    """A UTF-8 string (tfds ``Text``)."""

    doc: str = ""

    def to_json(self) -> dict[str, Any]:
        return _with_doc({"pythonClassName": _CLASS + "text_feature.Text", "text": {}}, self.doc)


@dataclass(frozen=True)
class ImageFeature:
    """An encoded image (tfds ``Image``): ``(H, W, 3)`` uint8 colour or ``(H, W, 1)`` uint16 depth."""

    height: int
    width: int
    channels: int
    encoding: str
    dtype: str = "uint8"
    doc: str = ""

    def __post_init__(self) -> None:
        if self.encoding not in ("jpeg", "png"):
            raise ValueError(f"image encoding {self.encoding!r} must be 'jpeg' or 'png'")
        if self.dtype == "uint16" and self.encoding != "png":
            raise ValueError("16-bit images must be PNG")
        if self.height <= 0 or self.width <= 0 or self.channels not in (1, 3):
            raise ValueError(f"bad image shape {(self.height, self.width, self.channels)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_json(self) -> dict[str, Any]:
        image = {"dtype": self.dtype, "encodingFormat": self.encoding,
                 "shape": {"dimensions": [str(d) for d in self.shape]}}
        return _with_doc({"pythonClassName": _CLASS + "image_feature.Image", "image": image},
                         self.doc)


Feature = Union[TensorFeature, TextFeature, ImageFeature]


@dataclass(frozen=True)
class EpisodeSchema:
    """Features of one RLDS episode, keyed by their path below ``steps`` / ``episode_metadata``.

    Attributes:
        steps: e.g. ``{"observation/wrist": ImageFeature(...), "action": TensorFeature(...)}``.
        episode_metadata: scalar features, e.g. ``{"episode_id": TextFeature()}``.
    """

    steps: Mapping[str, Feature]
    episode_metadata: Mapping[str, Feature]

    def features_json(self) -> dict[str, Any]:
        """The content of ``features.json``."""
        steps = {"pythonClassName": _CLASS + "dataset_feature.Dataset",
                 "sequence": {"feature": _features_dict(self.steps), "length": "-1"}}
        top = {"steps": steps, "episode_metadata": _features_dict(self.episode_metadata)}
        return {"pythonClassName": _CLASS + "features_dict.FeaturesDict",
                "featuresDict": {"features": dict(sorted(top.items()))}}


@dataclass(frozen=True)
class SplitInfo:
    """One split as written: episodes per shard and total bytes."""

    name: str
    shard_lengths: tuple[int, ...]
    num_bytes: int


def dataset_info_json(name: str, version: str, description: str,
                      splits: list[SplitInfo]) -> dict[str, Any]:
    """The content of ``dataset_info.json`` (only keys of tfds's ``DatasetInfo`` proto; no
    ``moduleName``, so nothing points readers at code they may not have installed)."""
    return {
        "name": name,
        "version": version,
        "description": description,
        "fileFormat": "tfrecord",
        "splits": [
            {"name": s.name,
             "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
             "numBytes": str(s.num_bytes),
             "shardLengths": [str(n) for n in s.shard_lengths]}
            for s in splits
        ],
    }


def shard_file_name(name: str, split: str, index: int, count: int) -> str:
    """``<name>-<split>.tfrecord-0000i-of-0000N``, the names tfds looks for (0-based index)."""
    return f"{name}-{split}.tfrecord-{index:05d}-of-{count:05d}"


def _features_dict(flat: Mapping[str, Feature]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, feature in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"feature {path!r} nests inside the leaf feature {part!r}")
            node = child
        if leaf in node:
            raise ValueError(f"feature {path!r} is declared twice")
        node[leaf] = feature
    return _dict_json(tree)


def _dict_json(tree: dict[str, Any]) -> dict[str, Any]:
    features = {key: (_dict_json(value) if isinstance(value, dict) else value.to_json())
                for key, value in sorted(tree.items())}
    return {"pythonClassName": _CLASS + "features_dict.FeaturesDict",
            "featuresDict": {"features": features}}


def _with_doc(out: dict[str, Any], doc: str, value_range: str = "") -> dict[str, Any]:
    # "description" and "valueRange" are fields of tfds's Feature proto (feature.proto), which
    # tfds loads into the feature's doc; any other key would make features.json unreadable.
    if doc:
        out["description"] = doc
    if value_range:
        out["valueRange"] = value_range
    return out
