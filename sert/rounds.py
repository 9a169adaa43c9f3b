"""Iterated SERT (beyond the paper, STaR-style): repeat sample -> filter -> self-train from the
latest model for ``rounds`` rounds, and monitor every round on the test split.

Round 1 is the paper's pipeline (the sample, filter and ``train-sert`` stages). Rounds 2..N run
inside the ``train-sert`` stage (stages/train_sert.py); each samples the train questions from the
previous round's model with the *training* prompt (``prompts.train``: the self-trained model
learned to reason after that prompt, and answers the zero-shot prompt less reliably) and its
round's sampling config (``round_sample_config``), filters and selects with the same ``filter``
params, and self-trains that model on the newly selected paths. Sampling, filtering and selection
are sert/selftrain.py's ``sample_filter_select``, whose two parts are round 1's sample and filter
stages: every round uses the configured ``sample.backend`` and resumable shards. The intermediate models go to
``models/sert_rounds/round-<k>``; the last round's model is ``models/sert``, so ``sert_rd`` and
``evaluate@sert`` use it. The ``rounds`` stage (stages/rounds.py) evaluates the intermediate models
greedily (monitoring only: no model is selected by its test accuracy) and takes the last round's
numbers from ``evaluate@sert``, so the default (1 round) costs nothing extra; the report draws
them (sert/report.py's ``rounds_markdown`` and ``rounds_svg``).

This module holds the config and the rule that is a round's own.
"""

from __future__ import annotations

import dataclasses

from sert.config import SampleConfig


def round_sample_config(cfg: SampleConfig, round_: int) -> SampleConfig:
    """Round ``round_``'s sampling config: ``cfg`` with the seed ``cfg.seed + round_ - 1``, a fresh
    seed per round so that rounds do not reuse one stream of random draws (round 1: ``cfg``)."""
    return dataclasses.replace(cfg, seed=cfg.seed + round_ - 1)
