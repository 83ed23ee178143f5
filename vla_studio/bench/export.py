"""RLDS export speed, against tensorflow_datasets' own builder writing the same episodes.

Exports a dataset folder (given with --dataset) with VLA Studio's exporter, then writes the same
episodes, the same features and the same splits through a tfds ``GeneratorBasedBuilder`` (its
own example serializer, shuffler and TFRecord writer) in the same run. Both read the episode
files the same way; tfds receives the encoded frames as bytes, so it does not re-encode them
either. tensorflow_datasets is only imported for that comparison (skipped with --no-tfds or when
it is not installed).

Figures: episodes, steps, source and export MB, export seconds, episodes/s, MB/s (exported bytes
per second), tfds_builder_s, speedup_vs_tfds. Target: speedup >= 3.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELP = "RLDS export speed vs tensorflow_datasets' own builder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True,
                        help="dataset folder to export (holds episodes/*.h5)")
    parser.add_argument("--image-size", default=None, metavar="N|WxH",
                        help="resize frames (default: pass the recorded frames through)")
    parser.add_argument("--workers", type=int, default=0,
                        help="export workers (default: one per core, at most 4)")
    parser.add_argument("--no-tfds", action="store_true",
                        help="skip the tensorflow_datasets builder comparison")


def run(args: argparse.Namespace) -> dict:
    from vla_studio.data.rlds import ExportOptions, RldsExporter, parse_image_size

    image_size = parse_image_size(args.image_size) if args.image_size else None
    with tempfile.TemporaryDirectory(prefix="vla-bench-export-") as tmp:
        tmp_dir = Path(tmp)
        dataset = args.dataset
        options = ExportOptions(name="bench_export", image_size=image_size, workers=args.workers)
        print(f"exporting {dataset} ...", file=sys.stderr)
        exporter = RldsExporter(dataset, tmp_dir / "ours", options)
        t0 = time.perf_counter()
        report = exporter.run()
        ours_s = time.perf_counter() - t0
        source_bytes = sum(p.stat().st_size for p, _ in _episode_files(report, exporter))
        result: dict[str, Any] = {
            "episodes": report.total_episodes,
            "steps": report.steps,
            "source_mb": round(source_bytes / 1e6, 3),
            "export_mb": round(report.bytes_written / 1e6, 3),
            "export_s": round(ours_s, 4),
            "episodes_per_s": round(report.total_episodes / ours_s, 3),
            "mb_per_s": round(report.bytes_written / 1e6 / ours_s, 3),
            "reencoded_frames": report.reencoded_frames,
            "tfds_builder_s": None,
            "speedup_vs_tfds": None,
        }
        shutil.rmtree(tmp_dir / "ours")
        if not args.no_tfds:
            tfds_s = _tfds_builder_seconds(dataset, tmp_dir / "tfds", options)
            if tfds_s is not None:
                result["tfds_builder_s"] = round(tfds_s, 4)
                result["speedup_vs_tfds"] = round(tfds_s / ours_s, 3)
    return result


def _episode_files(report: Any, exporter: Any) -> list[tuple[Path, None]]:
    from vla_studio.data.rlds import find_episode_files

    skipped = {p for p, _ in report.skipped}
    return [(p, None) for p in find_episode_files(exporter.dataset) if p not in skipped]


def _tfds_builder_seconds(dataset: Path, out: Path, options: Any) -> float | None:
    """Seconds for tfds's own builder to write the same episodes (None without tfds)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        print("tensorflow_datasets is not installed: no builder comparison", file=sys.stderr)
        return None
    from vla_studio.data.rlds import RldsExporter
    from vla_studio.data.rlds.episode_encoder import read_episode

    logging.getLogger("absl").setLevel(logging.ERROR)
    tfds.disable_progress_bar()
    print("writing the same episodes with tensorflow_datasets' builder ...", file=sys.stderr)
    t0 = time.perf_counter()
    exporter = RldsExporter(dataset, out, options)
    plan = exporter.plan()
    features = tfds.features.FeatureConnector.from_json(plan.schema().features_json())
    open_episode = exporter.open_episode

    class BenchExport(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(options.version)
        # No source file of its own: spares tfds a checksum lookup beside the module, which
        # needs the optional importlib_resources package for classes inside packages.
        code_path = None

        def _info(self) -> Any:
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager: Any) -> dict:
            return {split: self._generate_examples(split) for split in plan.splits}

        def _generate_examples(self, split: str) -> Any:
            for planned in plan.episodes:
                if planned.split != split:
                    continue
                with open_episode(planned.summary.path) as reader:
                    values = read_episode(plan, planned, reader).values
                yield planned.summary.episode_id, _nest(values)

    BenchExport(data_dir=str(out)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(verify_ssl=False))
    return time.perf_counter() - t0


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"steps/observation/front": v}`` -> ``{"steps": {"observation": {"front": v}}}``; a
    one-element episode_metadata value becomes the scalar tfds expects."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value[0] if parents[0] == "episode_metadata" else value
    return out
