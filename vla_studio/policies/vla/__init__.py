"""The reference VLA: a compact language-conditioned policy trained from VLA Studio datasets.

Modules: :mod:`~.tokenizer` (instruction words), :mod:`~.normalization` (q01/q99 action bins,
state statistics), :mod:`~.model` (the network), :mod:`~.episodes` and :mod:`~.batches`
(reading datasets, sharded batches, augmentation), :mod:`~.train` (single process or DDP),
:mod:`~.evaluation` (validation figures), :mod:`~.checkpoint` (the native format) and
:mod:`~.policy` (the :class:`~vla_studio.policies.base.Policy`). See docs/vla.md.
"""
