"""Load an RLDS export with tensorflow_datasets and print what a training pipeline would read,
as one JSON object per episode (tests run this in a child process: TensorFlow cannot share a
process with MuJoCo's EGL renderer or the GUI tests).

Usage: python -m tests.tfds_dump DATA_DIR NAME
"""

from __future__ import annotations

import hashlib
import json
import sys


def main(data_dir: str, name: str) -> int:
    import numpy as np
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    for split in builder.info.splits:
        for episode in tfds.as_numpy(builder.as_dataset(split=split)):
            steps = list(episode["steps"])
            md = episode["episode_metadata"]
            action = np.stack([s["action"] for s in steps]).astype(np.float32)
            print(json.dumps({
                "split": split,
                "file": md["file_path"].decode(),
                "steps": len(steps),
                "trim_start": int(md["trim_start"]),
                "success": int(md["success"]),
                "instructions": sorted({s["language_instruction"].decode() for s in steps}),
                "subtasks": [s["language_subtask"].decode() for s in steps]
                if "language_subtask" in steps[0] else None,
                "subtask_first": [bool(s["is_subtask_first"]) for s in steps]
                if "is_subtask_first" in steps[0] else None,
                "is_terminal": [bool(s["is_terminal"]) for s in steps],
                "reward_last": float(steps[-1]["reward"]),
                "action_sha256": hashlib.sha256(action.tobytes()).hexdigest(),
            }))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
