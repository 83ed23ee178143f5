"""Fixtures of the VLA tests: one micro-dataset per session and a tiny model to train on it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.policies.micro_dataset import write_micro_dataset
from vla_studio.policies.vla.batches import Augmentation
from vla_studio.policies.vla.model import ModelConfig
from vla_studio.policies.vla.train import TrainConfig

# Small enough that a few optimisation steps take a fraction of a second on one thread.
TINY_MODEL = ModelConfig(image_size=(32, 32), width=32, depth=1, heads=2, channels=(8, 16, 16, 32),
                         grid=2, chunk_size=4)


@pytest.fixture(scope="session")
def micro_dataset(tmp_path_factory):
    return write_micro_dataset(tmp_path_factory.mktemp("micro") / "dataset")


@pytest.fixture
def tiny_config(micro_dataset, tmp_path):
    """A training run of the tiny model on the micro-dataset, one thread, into ``tmp_path``."""
    def make(**changes) -> TrainConfig:
        base = TrainConfig(datasets=(str(micro_dataset),), out=str(tmp_path / "run"), epochs=2,
                           batch_size=8, lr=3e-3, seed=0, device="cpu", threads=1,
                           model=TINY_MODEL, augmentation=Augmentation(shift=2), log_every=1)
        return replace(base, **changes)
    return make
