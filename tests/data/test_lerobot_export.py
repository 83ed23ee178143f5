"""The LeRobot export opens in LeRobot's own loader (``LeRobotDataset(repo_id, root=...)``,
from ``lerobot-dataset``, LeRobot's dataset module) unchanged, and its frames, actions, states,
tasks and episode boundaries are our episodes' (annotations honoured), from JPEG and video
storage alike.

LeRobot's video decoding (its "pyav" backend) goes through torchvision's VideoReader, which
torchvision 0.25 is the last to have; that wheel is built for a CUDA torch, so its compiled
operators cannot load beside our CPU torch and its Python code registers fake kernels for two
of them (nms, qnms) at import. Defining those two operator schemas first lets it import; no
decoding code is touched. Runs in its own process (see ISOLATED in tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
try:  # torchvision's version without importing it (its import needs the schemas below)
    from importlib.metadata import PackageNotFoundError, version

    version("torchvision")
except PackageNotFoundError:
    pytest.skip("torchvision is not installed (scripts/test.sh installs it)",
                allow_module_level=True)
if not hasattr(torch.ops, "torchvision") or not hasattr(torch.ops.torchvision, "nms"):
    _TORCHVISION_OPS = torch.library.Library("torchvision", "DEF")  # kept alive: module global
    _TORCHVISION_OPS.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OPS.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
lerobot_dataset = pytest.importorskip("ledataset.datasets.lerobot_dataset")

from vla_studio.data.annotations import write_annotations  # noqa: E402
from vla_studio.data.episode_file import EpisodeReader  # noqa: E402
from vla_studio.data.lerobot import LeRobotExporter, LeRobotOptions  # noqa: E402
from vla_studio.data.transcode import transcode_episode  # noqa: E402
from vla_studio.data.video_storage import open_frame_source  # noqa: E402

from tests.data.video_episodes import small_episode  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Three episodes: JPEG; video with an edited instruction and a trim; one marked a
    failure after recording (left out by --success-only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HOME", str(tmp_path_factory.mktemp("hf")))
    root = tmp_path_factory.mktemp("lerobot_src")
    paths = [small_episode(root, steps=30, seed=k) for k in range(3)]
    write_annotations(paths[1], {"instructions": ["put the red cube in the bowl"],
                                 "trim": [4, 26]}, source="researcher")
    assert transcode_episode(paths[1]).outcome == "transcoded"
    write_annotations(paths[2], {"success": False}, source="researcher")
    out = tmp_path_factory.mktemp("lerobot_out") / "pick_cube"
    report = LeRobotExporter(root, out, LeRobotOptions("vla-studio/pick_cube",
                                                       success_only=True)).run()
    yield paths, out, report
    shutil.rmtree(out, ignore_errors=True)


def test_lerobot_loads_the_export_with_our_episodes(exported):
    paths, out, report = exported
    assert report.episodes == 2 and report.left_out == {"outcome failure": 1}
    assert report.storages == {"jpeg": 2, "av1": 1}
    ds = lerobot_dataset.LeRobotDataset("vla-studio/pick_cube", root=out, video_backend="pyav")
    assert ds.num_episodes == 2 and ds.fps == 30 and len(ds) == 30 + 22
    episodes = ds.meta.episodes
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == \
        [(0, 30), (30, 52)]
    assert [e["tasks"] for e in episodes] == [["pick up the red cube"],
                                              ["put the red cube in the bowl"]]
    for k, (path, start, end) in enumerate(((paths[0], 0, 30), (paths[1], 4, 26))):
        with EpisodeReader(path) as ep:
            action = ep.step("action")
            state = ep.state()
            state = np.concatenate([state[key].reshape(ep.num_steps, -1)
                                    for key in sorted(state)], axis=1)
            instruction = ep.instructions()[0]
        source = open_frame_source(path)
        first = episodes[k]["dataset_from_index"]
        for j, step in enumerate(range(start, end)):
            item = ds[first + j]
            assert int(item["episode_index"]) == k and int(item["frame_index"]) == j
            assert item["task"] == instruction
            np.testing.assert_allclose(item["action"].numpy(), action[step], rtol=0, atol=0)
            np.testing.assert_allclose(item["observation.state"].numpy(), state[step])
            assert bool(item["next.done"]) == (step == end - 1)
            for cam in ("front", "wrist"):
                picture = (item[f"observation.images.{cam}"].numpy().transpose(1, 2, 0) * 255)
                ids = source.frame_ids(cam)
                shown = max([s for s in range(step + 1) if ids[s] >= 0] or
                            [int(np.flatnonzero(ids >= 0)[0])])
                stored = source.read_color(cam, shown).astype(np.float64)
                mse = np.mean((picture - stored) ** 2)
                assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 22, (k, step, cam)
        source.close()
    assert set(ds.meta.stats) >= {"observation.images.front", "observation.state", "action"}
    assert ds.meta.stats["observation.images.front"]["mean"].shape == (3, 1, 1)
