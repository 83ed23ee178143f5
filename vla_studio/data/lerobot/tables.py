"""The parquet tables and JSON of a LeRobotDataset v3, laid out as LeRobot's own writer lays
them out (column types, the Hugging Face ``datasets`` feature metadata, the pandas index of
the tasks table), with pyarrow only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

DATA_PATH = "data/chunk-000/file-000.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
TASKS_PATH = "meta/tasks.parquet"
_ARROW = {"float32": "float32", "int64": "int64", "bool": "bool_"}


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise RuntimeError("the LeRobot export needs pyarrow (pip install pyarrow)") from exc
    return pa, pq


def write_data(root: Path, columns: dict[str, list], features: dict[str, dict]) -> None:
    """The frames table: one row per exported frame, every non-video feature a column."""
    pa, pq = _pa()
    fields, arrays, hf = [], [], {}
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        scalar = getattr(pa, _ARROW[ft["dtype"]])()
        if ft["shape"] == [1]:
            arrays.append(pa.array(columns[key], type=scalar))
            hf[key] = {"dtype": ft["dtype"], "_type": "Value"}
        else:
            size = int(ft["shape"][0])
            values = np.asarray(columns[key], dtype=ft["dtype"]).reshape(-1)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values, type=scalar), size))
            hf[key] = {"feature": {"dtype": ft["dtype"], "_type": "Value"}, "length": size,
                       "_type": "List"}
        fields.append(pa.field(key, arrays[-1].type))
    schema = pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})
    path = root / DATA_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path, compression="snappy")


def write_episodes(root: Path, rows: list[dict[str, Any]],
                   stats: list[dict[str, dict[str, np.ndarray]]]) -> None:
    """The episodes table: where each episode's rows and video frames are, its statistics."""
    pa, pq = _pa()
    table: dict[str, list] = {}
    for row, episode_stats in zip(rows, stats):
        flat = dict(row)
        for key, values in episode_stats.items():
            for name, value in values.items():
                flat[f"stats/{key}/{name}"] = np.asarray(value).tolist()
        flat["meta/episodes/chunk_index"] = 0
        flat["meta/episodes/file_index"] = 0
        for key, value in flat.items():
            table.setdefault(key, []).append(value)
    path = root / EPISODES_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(table), path, compression="snappy")


def write_tasks(root: Path, tasks: dict[str, int]) -> None:
    """The tasks table: ``task_index`` with the task text as its (pandas) index, as LeRobot
    reads it (``tasks.iloc[i].name`` is the task)."""
    pa, pq = _pa()
    names = sorted(tasks, key=tasks.get)
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0"}
    schema = pa.schema([pa.field("task_index", pa.int64()),
                        pa.field("__index_level_0__", pa.string())],
                       metadata={"pandas": json.dumps(pandas_meta)})
    table = pa.Table.from_arrays([pa.array([tasks[n] for n in names], pa.int64()),
                                  pa.array(names, pa.string())], schema=schema)
    path = root / TASKS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_info(root: Path, info: dict[str, Any]) -> None:
    path = root / "meta" / "info.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=4, ensure_ascii=False), encoding="utf-8")
