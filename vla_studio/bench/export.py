"""RLDS export speed, against tensorflow_datasets' own builder writing the same episodes.

Generates a dataset (or takes --dataset) through the recorder's own episode writer (step
encoder -> episode file writer -> seal, as a recording does) with synthetic camera frames, exports
it with VLA Studio's exporter, then writes the same episodes, features and splits through a tfds
``GeneratorBasedBuilder`` (its own example serializer, shuffler and TFRecord writer) in the same
run. Both read the episode files the same way; tfds receives the encoded frames as bytes, so it
does not re-encode them either. tensorflow_datasets is only imported for that comparison
(skipped with --no-tfds or when it is not installed).

Each side runs --repeat times, interleaved; the best time of each is reported, as wall-clock
seconds and as CPU seconds of this process (all threads; other processes' load does not inflate
it). Figures: episodes, steps, source and export MB, export seconds, episodes/s, MB/s (exported
bytes per second), tfds_builder_s, speedup_vs_tfds (wall clock) and the *_cpu_s /
speedup_vs_tfds_cpu counterparts. Target: speedup >= 3.
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
    parser.add_argument("--dataset", type=Path, default=None,
                        help="export this dataset folder instead of generating one")
    parser.add_argument("--episodes", type=_positive, default=20, help="episodes to generate")
    parser.add_argument("--steps", type=_positive, default=150,
                        help="steps per generated episode")
    parser.add_argument("--cameras", type=_positive, default=3,
                        help="cameras per generated episode (default 3 x 640x480, the "
                             "recording target)")
    parser.add_argument("--size", default="640x480", metavar="WxH",
                        help="generated camera frame size")
    parser.add_argument("--image-size", default=None, metavar="N|WxH",
                        help="resize frames on export (default: pass the recorded frames through)")
    parser.add_argument("--workers", type=int, default=0,
                        help="export workers (default: as vla-studio export chooses)")
    parser.add_argument("--repeat", type=_positive, default=3,
                        help="runs of each side; the best time of each is reported (a shared "
                             "machine's load only ever adds time)")
    parser.add_argument("--no-tfds", action="store_true",
                        help="skip the tensorflow_datasets builder comparison")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def run(args: argparse.Namespace) -> dict:
    from vla_studio.data.rlds import ExportError

    try:
        return _run(args)
    except ExportError as exc:
        print(f"vla-studio: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(args: argparse.Namespace) -> dict:
    from vla_studio.data.rlds import ExportOptions, RldsExporter, parse_image_size

    image_size = parse_image_size(args.image_size) if args.image_size else None
    with tempfile.TemporaryDirectory(prefix="vla-bench-export-") as tmp:
        tmp_dir = Path(tmp)
        dataset = args.dataset
        if dataset is None:
            dataset = tmp_dir / "dataset"
            width, height = parse_image_size(args.size)
            print(f"generating {args.episodes} episodes of {args.steps} steps, {args.cameras} "
                  f"camera(s) {width}x{height} ...", file=sys.stderr)
            generate_dataset(dataset, args.episodes, args.steps, args.cameras, (width, height))
        options = ExportOptions(name="bench_export", image_size=image_size, workers=args.workers)
        ours: list[tuple[float, float]] = []  # (wall, cpu) seconds per run
        theirs: list[tuple[float, float]] = []
        for r in range(args.repeat):  # interleaved, so both see the same machine load
            print(f"[{r + 1}/{args.repeat}] exporting {dataset} ...", file=sys.stderr)
            exporter = RldsExporter(dataset, tmp_dir / "ours", options)
            t0, c0 = time.perf_counter(), time.process_time()
            report = exporter.run()
            ours.append((time.perf_counter() - t0, time.process_time() - c0))
            shutil.rmtree(tmp_dir / "ours")
            if not args.no_tfds:
                tfds_times = _tfds_builder_seconds(dataset, tmp_dir / "tfds", options)
                shutil.rmtree(tmp_dir / "tfds", ignore_errors=True)
                if tfds_times is not None:
                    theirs.append(tfds_times)
        ours_s, ours_cpu = min(w for w, _ in ours), min(c for _, c in ours)
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
            "repeat": args.repeat,
            "export_cpu_s": round(ours_cpu, 4),
            "tfds_builder_s": None,
            "tfds_builder_cpu_s": None,
            "speedup_vs_tfds": None,
            "speedup_vs_tfds_cpu": None,
        }
        if theirs:
            tfds_s, tfds_cpu = min(w for w, _ in theirs), min(c for _, c in theirs)
            result.update(tfds_builder_s=round(tfds_s, 4), tfds_builder_cpu_s=round(tfds_cpu, 4),
                          speedup_vs_tfds=round(tfds_s / ours_s, 3),
                          speedup_vs_tfds_cpu=round(tfds_cpu / ours_cpu, 3))
    return result


def generate_dataset(folder: Path, episodes: int, steps: int, cameras: int,
                     size: tuple[int, int], seed: int = 0) -> list[Path]:
    """Write ``episodes`` synthetic episodes into ``folder/episodes`` with the recorder's writer.

    Frames are a textured scene that shifts every step (so each frame is a new JPEG of realistic
    size); actions and state are smooth random walks; every episode is marked successful.
    """
    import numpy as np

    from vla_studio.bench.frames import scene_texture
    from vla_studio.core.types import Frame, Observation, SourceKind, StageTiming, Step
    from vla_studio.data.episode_writer import EpisodeFileWriter, seal_episode
    from vla_studio.data.step_encoder import CameraSchema, EpisodeSchema, StepEncoder

    width, height = size
    rng = np.random.default_rng(seed)
    names = [f"cam{i}" for i in range(cameras)]
    schema = EpisodeSchema(
        action_names=("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
        action_space_kind="ee_delta", state={"joint_positions": (7,), "ee_pose": (7,),
                                             "gripper": (1,)},
        cameras=tuple(CameraSchema(n, "synthetic", True, width, height, None, 30.0, 0.2)
                      for n in names))
    textures = [scene_texture(rng, width, height) for _ in names]
    timing = StageTiming(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    out = folder / "episodes"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for e in range(episodes):
        path = out / f"20260101-000000_{e:08x}.h5.recording"
        attrs = {"episode_id": f"bench-{e:04d}", "created": "2026-01-01T00:00:00Z",
                 "language_instruction": "pick up the red cube",
                 "language_instructions": ["pick up the red cube"], "task": "pick_cube",
                 "operator": "bench", "station_name": "bench", "robot_type": "synthetic",
                 "action_space_kind": schema.action_space_kind,
                 "action_names": list(schema.action_names),
                 "cameras": {c.name: c.metadata() for c in schema.cameras},
                 "control_rate_hz": 30.0, "start_time_unix": 1.8e9}
        writer = EpisodeFileWriter(path, schema, attrs)
        writer.create()
        encoder = StepEncoder(schema)
        walk = np.cumsum(rng.normal(0, 0.01, (steps, 15)), axis=0).astype(np.float32)
        for i in range(steps):
            t = 100.0 + i / 30.0
            frames = {n: Frame(n, i, t, color=np.roll(tex, 3 * i + e, axis=1))
                      for n, tex in zip(names, textures)}
            state = {"joint_positions": walk[i, :7], "ee_pose": walk[i, 7:14],
                     "gripper": walk[i, 14:]}
            action = walk[i, :7]
            encoder.add(Step(i, t, Observation(i, t, state, frames), action, action,
                             SourceKind.TELEOP, 0, "", timing))
            if encoder.pending >= 30 or i == steps - 1:
                writer.append(encoder.take())
                writer.commit()
        writer.close()
        final = path.with_name(path.name.removesuffix(".recording"))
        seal_episode(path, steps, {"status": "complete"}, success=1)
        path.rename(final)
        paths.append(final)
    return paths


def _episode_files(report: Any, exporter: Any) -> list[tuple[Path, None]]:
    from vla_studio.data.rlds import find_episode_files

    skipped = {p for p, _ in report.skipped}
    return [(p, None) for p in find_episode_files(exporter.dataset) if p not in skipped]


def _tfds_builder_seconds(dataset: Path, out: Path, options: Any) -> tuple[float, float] | None:
    """(wall, CPU) seconds for tfds's own builder to write the same episodes (None without
    tfds)."""
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError:
        print("tensorflow_datasets is not installed: no builder comparison", file=sys.stderr)
        return None
    from vla_studio.data.rlds import RldsExporter
    from vla_studio.data.rlds.episode_encoder import read_episode

    logging.getLogger("absl").setLevel(logging.ERROR)
    tfds.disable_progress_bar()
    # Warm up outside the timing: TensorFlow's import and first op take seconds.
    tf.io.serialize_tensor(tf.constant([0.0])).numpy()
    print("writing the same episodes with tensorflow_datasets' builder ...", file=sys.stderr)
    t0, c0 = time.perf_counter(), time.process_time()
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
    return time.perf_counter() - t0, time.process_time() - c0


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"steps/observation/front": v}`` -> ``{"steps": {"observation": {"front": v}}}``; a
    one-element episode_metadata value becomes the scalar tfds expects."""
    import numpy as np

    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        if parents[0] == "episode_metadata":
            value = value[0]
        elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            value = [bytes(v) for v in value]  # tfds's Image feature takes bytes, not arrays
        node[leaf] = value
    return out
