"""The training data loader reads a video-stored episode through the frame source: the same
steps and pictures (within the transcode's PSNR) as its JPEG original."""

from __future__ import annotations

import shutil

import cv2

from vla_studio.data.transcode import transcode_episode
from vla_studio.policies.vla.episodes import load_frames, scan_datasets

from .video_episodes import small_episode


def test_training_frames_from_video_storage_match_jpeg(tmp_path):
    jpeg = small_episode(tmp_path / "jpeg", steps=30)
    (tmp_path / "video" / "episodes").mkdir(parents=True)
    video = tmp_path / "video" / "episodes" / jpeg.name
    shutil.copy(jpeg, video)
    assert transcode_episode(video).outcome == "transcoded"
    frames = {}
    for name in ("jpeg", "video"):
        scan = scan_datasets([tmp_path / name], cameras=("front", "wrist"),
                             state_keys=("ee_pos", "gripper"))
        frames[name] = load_frames(scan.episodes, ("front", "wrist"), (48, 64), threads=1)
    a, b = frames["jpeg"].images, frames["video"].images
    assert a.shape == b.shape == (30, 2, 3, 48, 64)
    assert (frames["jpeg"].offsets == frames["video"].offsets).all()
    for step in range(30):
        for cam in range(2):
            assert cv2.PSNR(a[step, cam], b[step, cam]) > 25, (step, cam)
