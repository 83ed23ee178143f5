"""The video frame source decodes little: reading in order decodes every frame once, a seek
decodes at most one group of pictures, stepping back within it decodes nothing; the replay
view's reader serves a video episode like a JPEG one."""

from __future__ import annotations

import numpy as np

from vla_studio.bench.replay_episode import CameraPlan
from vla_studio.data.frame_reader import FrameReader
from vla_studio.data.transcode import transcode_episode
from vla_studio.data.video_storage import open_frame_source

from .conftest import wait_until
from .video_episodes import small_episode


def test_in_order_reads_decode_each_frame_once_and_seeks_one_group(tmp_path):
    path = small_episode(tmp_path, steps=90, cameras=(CameraPlan("front", 160, 120),))
    assert transcode_episode(path).outcome == "transcoded"
    source = open_frame_source(path)
    frames = source.video_packets("front")
    gop = int(np.diff(np.flatnonzero(frames[:, 2])).max())
    assert gop == 15  # 0.5 s at 30 fps
    steps = list(range(source.num_steps))
    pictures = [f for _, f in source.iter_color("front", steps)]
    assert source.decoded_video_frames("front") == len(frames)
    source.close()

    source = open_frame_source(path)
    ids = source.frame_ids("front")
    step = int(np.flatnonzero(ids == 44)[0])  # frame 44: 14 frames after its key frame (30)
    assert np.array_equal(source.read_color("front", step), pictures[step])
    assert source.decoded_video_frames("front") == 15
    back = int(np.flatnonzero(ids == 40)[0])
    assert np.array_equal(source.read_color("front", back), pictures[back])
    assert source.decoded_video_frames("front") == 15  # decoded on the way: nothing new
    source.close()


def test_the_replay_reader_serves_a_video_episode(tmp_path):
    path = small_episode(tmp_path, steps=60)
    assert transcode_episode(path).outcome == "transcoded"
    source = open_frame_source(path)
    ready = []
    reader = FrameReader(source, np.arange(source.num_steps) / 30.0 + 1000.0, ready.append)
    reader.set_display_size("front", (80, 60))
    reader.start()
    try:
        reader.request(40)
        wait_until(lambda: any(f.step == 40 for f in ready), 10, "step 40 decoded")
        frames = next(f for f in ready if f.step == 40)
        assert frames.color["front"].shape == (60, 80, 3)
        assert frames.color["wrist"] is not None and frames.depth["front"] is not None
    finally:
        reader.stop()
