"""The DAgger options of ``vla-studio train`` (fine-tuning from a checkpoint, sample weighting).

Kept beside :mod:`vla_studio.commands.train` so that command's module stays about the model and
the run; see :mod:`vla_studio.policies.vla.sample_weights` for what the presets do.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vla_studio.policies.vla.sample_weights import PRESETS

    group = parser.add_argument_group("DAgger (demonstrations + correction rounds)")
    group.add_argument("--init", metavar="CKPT", default="",
                       help="fine-tune from this checkpoint (or run directory: its best): its "
                            "architecture, vocabulary and weights, a new run (each DAgger "
                            "round starts from the previous round's policy)")
    group.add_argument("--dagger-weighting", choices=PRESETS, default="uniform",
                       help="how correction episodes count: uniform (every policy and "
                            "operator step), hg-dagger (the operator's steps only), "
                            "intervention-weighted (interventions = --intervention-share of "
                            "the samples), sirius (as intervention-weighted, without the "
                            "policy's steps just before each takeover); demonstrations always "
                            "count fully, holds never")
    group.add_argument("--intervention-share", type=float, default=0.5, metavar="F",
                       help="share of the samples the interventions make up (default 0.5)")
    group.add_argument("--pre-intervention-s", type=float, default=1.0, metavar="S",
                       help="sirius: the window before each takeover left out, seconds "
                            "(default 1)")


def weighting(args: argparse.Namespace):
    """The :class:`~vla_studio.policies.vla.sample_weights.Weighting` the options ask for
    (raises ValueError naming a bad value)."""
    from vla_studio.policies.vla.sample_weights import Weighting

    return Weighting(args.dagger_weighting, args.intervention_share, args.pre_intervention_s)
