"""Test fixture: writes episode files in the recorder's HDF5 layout (format_version 1) with h5py.

Real JPEG/PNG frames (cv2) of a small synthetic scene: a grey table, a red cube that slides with
the step index and a green target. Frames are encoded from BGR, as a recorder must (cv2 expects
BGR), so a decoder returning RGB sees a red cube. Options cover what the exporter must handle:
varied lengths, steps without an image, several cameras, PNG frames, depth, paraphrases, trims,
success/failure/unknown, annotations that override root attributes, recording/corrupt files.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np

ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
STATE_SHAPES = {"joints": (6,), "ee_position": (3,), "gripper": ()}
# The state the simulated arm records (vla_studio.devices.robots.sim), with its station profile.
SIM_STATE_SHAPES = {"joint_pos": (7,), "joint_vel": (7,), "ee_pos": (3,), "ee_quat": (4,),
                    "gripper": (1,)}
SIM_PROFILE = """name = "sim"
control_rate_hz = 10
[robot]
type = "sim"
[[cameras]]
type = "synthetic"
name = "front"
"""


@dataclass
class EpisodeSpec:
    """What one synthetic episode looks like."""

    steps: int = 12
    cameras: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"front": (96, 72), "wrist": (64, 48)})  # name -> (width, height)
    image_format: str = "jpeg"
    depth_cameras: tuple[str, ...] = ()
    missing: dict[str, list[int]] = field(default_factory=dict)  # camera -> steps without image
    instructions: list[str] = field(default_factory=lambda: ["pick up the red cube"])
    annotation_instructions: list[str] | None = None
    success: int = 1
    annotation_success: int | None = None
    trim: tuple[int, int] | None = None
    status: str = "complete"
    operator: str = "ada"
    task: str = "pick_cube"
    seed: int = 0
    episode_id: str = ""
    state_shapes: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(STATE_SHAPES))
    station_profile: str = "[station]\nname = 'sim'\n"
    action_space_kind: str = "ee_delta"
    action_names: list[str] = field(default_factory=lambda: list(ACTION_NAMES))


def scene_bgr(width: int, height: int, step: int, camera_index: int) -> np.ndarray:
    """A BGR frame: grey table, red cube moving with ``step``, green target."""
    img = np.full((height, width, 3), (90, 100, 110), np.uint8)
    cx = int((0.2 + 0.05 * step + 0.1 * camera_index) % 0.8 * width) + width // 10
    cy = height // 2
    s = max(4, width // 8)
    img[cy - s // 2:cy + s // 2, cx - s // 2:cx + s // 2] = (30, 30, 220)  # red in BGR
    img[height - s - 2:height - 2, 2:2 + s] = (40, 200, 40)
    noise = np.random.default_rng(step * 7 + camera_index).integers(0, 12, img.shape, np.uint8)
    return cv2.add(img, noise)


def encode(bgr: np.ndarray, fmt: str) -> bytes:
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr,
                           [cv2.IMWRITE_JPEG_QUALITY, 90] if fmt == "jpeg" else [])
    assert ok
    return buf.tobytes()


def write_episode(path: Path, spec: EpisodeSpec) -> Path:
    """Write one episode file following the recorder's layout."""
    rng = np.random.default_rng(spec.seed)
    t = spec.steps
    eid = spec.episode_id or str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | spec.seed))
    cameras = {name: {"type": "synthetic", "width": w, "height": h, "fps": 30,
                      "intrinsics": {"fx": w, "fy": w, "cx": w / 2, "cy": h / 2},
                      "depth_scale": 0.001 if name in spec.depth_cameras else None}
               for name, (w, h) in spec.cameras.items()}
    with h5py.File(path, "w") as f:
        a = f.attrs
        a["format"] = "vla-studio-episode"
        a["format_version"] = 1
        a["episode_id"] = eid
        a["created"] = f"2026-11-21T10:{spec.seed % 60:02d}:00+00:00"
        a["language_instruction"] = spec.instructions[0] if spec.instructions else ""
        a["language_instructions"] = json.dumps(spec.instructions)
        a["task"] = spec.task
        a["success"] = np.int8(spec.success)
        a["status"] = spec.status
        a["operator"] = spec.operator
        a["notes"] = ""
        a["scene_id"] = "scene-1"
        a["station_name"] = "sim"
        a["station_profile"] = spec.station_profile
        a["robot_type"] = "sim_arm"
        a["action_space_kind"] = spec.action_space_kind
        a["action_names"] = json.dumps(spec.action_names)
        a["cameras"] = json.dumps(cameras)
        a["control_rate_hz"] = 10.0
        a["software_version"] = "0.1.0"
        a["policy_id"] = ""
        a["num_steps"] = t
        a["duration_s"] = t / 10.0
        a["start_time_unix"] = 1.8e9
        a["safety_counts"] = json.dumps({})
        a["camera_stats"] = json.dumps({})
        steps = f.create_group("steps")
        action = rng.normal(0, 0.01, (t, len(spec.action_names))).astype(np.float32)
        action[:, -1] = np.linspace(0, 1, t)
        steps["action"] = action
        steps["requested_action"] = action
        steps["action_source"] = np.where(np.arange(t) % 5 == 4, 3, 1).astype(np.uint8)
        steps["safety_flags"] = np.zeros(t, np.uint32)
        first = np.zeros(t, bool)
        first[0] = True
        steps["is_first"] = first
        steps["is_last"] = first[::-1]
        steps["is_terminal"] = first[::-1]
        reward = np.zeros(t, np.float32)
        reward[-1] = 1.0 if spec.success == 1 else 0.0
        steps["reward"] = reward
        steps["discount"] = np.ones(t, np.float32)
        steps["timestamp"] = 5000.0 + np.arange(t) * 0.1 + rng.normal(0, 0.002, t)
        state = steps.create_group("observation/state")
        for key, shape in spec.state_shapes.items():
            state[key] = rng.normal(0, 1, (t, *shape)).astype(np.float32)
        for ci, (name, (w, h)) in enumerate(spec.cameras.items()):
            g = steps.create_group(f"observation/image/{name}")
            chunks, index, offset = [], np.zeros((t, 2), np.int64), 0
            for i in range(t):
                if i in spec.missing.get(name, []):
                    continue
                data = encode(scene_bgr(w, h, i, ci), spec.image_format)
                index[i] = (offset, len(data))
                chunks.append(data)
                offset += len(data)
            g["data"] = np.frombuffer(b"".join(chunks), np.uint8)
            g["index"] = index
            g.attrs["format"] = spec.image_format
            g.attrs["width"] = w
            g.attrs["height"] = h
            g["frame_index"] = np.arange(t, dtype=np.int64)
            g["capture_time"] = steps["timestamp"][:] - 0.01
            g["device_time"] = steps["timestamp"][:] - 0.02
        for name in spec.depth_cameras:
            w, h = spec.cameras[name]
            yy, xx = np.mgrid[0:h, 0:w]
            steps[f"observation/depth/{name}"] = np.stack(
                [(500 + 3 * xx + 5 * yy + 11 * i).astype(np.uint16) for i in range(t)])
        ann = f.create_group("annotations")
        if spec.annotation_instructions is not None:
            ann.attrs["instructions"] = json.dumps(spec.annotation_instructions)
        if spec.annotation_success is not None:
            ann.attrs["success"] = np.int8(spec.annotation_success)
        if spec.trim is not None:
            ann.attrs["trim"] = np.array(spec.trim, np.int64)
    return path


def write_corrupt_episode(path: Path) -> Path:
    """A file that starts like an episode but was cut short (not a valid HDF5 file)."""
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    return path


def write_dataset(root: Path, specs: list[EpisodeSpec]) -> list[Path]:
    """``root/episodes/episode_XXXX.h5`` for each spec, in order."""
    folder = root / "episodes"
    folder.mkdir(parents=True, exist_ok=True)
    return [write_episode(folder / f"episode_{i:04d}.h5", s) for i, s in enumerate(specs)]
