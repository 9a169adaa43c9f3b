"""Iterated SERT (beyond the paper, STaR-style): repeat sample -> filter -> self-train from the
latest model for ``rounds`` rounds, and monitor every round on the test split.

Round 1 is the paper's pipeline (the sample, filter and ``train-sert`` stages). Rounds 2..N run
inside the ``train-sert`` stage (stages/train_sert.py, calling ``later_rounds``); each samples the train questions from the
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

This module holds the rounds after the first: their loop, and the rule that is a round's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from sert import paths
from sert.config import FilterConfig, PromptConfig, SampleConfig, TrainConfig
from sert.filtering import format_funnel
from sert.formats import fill_prompt, self_train_text
from sert.modeling import save_student
from sert.selftrain import answer_check, sample_filter_select
from sert.tasks import Example, Task
from sert.training import LiveLossCurve, train_causal_lm
from sert.variants import encode_texts


def round_sample_config(cfg: SampleConfig, round_: int) -> SampleConfig:
    """Round ``round_``'s sampling config: ``cfg`` with the seed ``cfg.seed + round_ - 1``, a fresh
    seed per round so that rounds do not reuse one stream of random draws (round 1: ``cfg``)."""
    return dataclasses.replace(cfg, seed=cfg.seed + round_ - 1)


def later_rounds(model, tokenizer, rounds: int, examples: list[Example], task: Task, prompts: PromptConfig,
                 sample: SampleConfig, filters: FilterConfig, train: TrainConfig, trust_remote_code: bool,
                 save_dir: Path, live: LiveLossCurve, curve: list[float],
                 log: Callable[[str], None] = print) -> tuple[int, list[float], list[dict]]:
    """Rounds 2..``rounds`` of iterated SERT on ``model`` (round 1 already trained, in place).

    Each round saves the model it starts from to ``save_dir/round-<k-1>`` (vLLM samples from
    there), samples ``examples`` with the training prompt and the round's sampling config, filters
    and selects with ``filters`` (shards under ``paths.ROUNDS_WORK/round-<k>``, so a killed run
    reuses the rounds it had sampled) and self-trains on the selected paths. ``curve`` gets every
    round's losses appended and ``live`` draws them. Returns the last round's example count and
    losses, and one ``{"round", "samples", "selected"}`` row per round."""
    by_id = {ex.id: ex for ex in examples}
    check = answer_check(task, by_id)
    # The self-trained model reasons after the prompt it was trained with, not the zero-shot one.
    prompted = [(ex.id, fill_prompt(prompts.train, ex.question)) for ex in examples]
    stats, n_examples, losses = [], 0, []
    for round_ in range(2, rounds + 1):
        previous = save_dir / f"round-{round_ - 1}"
        save_student(model, tokenizer, previous)
        selected, funnel, _ = sample_filter_select(
            prompted, round_sample_config(sample, round_), filters, check, paths.ROUNDS_WORK / f"round-{round_}",
            previous, model=model, tokenizer=tokenizer, trust_remote_code=trust_remote_code,
            desc=f"sample round {round_}", log=log, context=f"train sert round {round_}: ", hint=" or lower sert.rounds")
        encoded = encode_texts(tokenizer, [self_train_text(by_id[s.id], s.text, prompts) for s in selected])
        torch.manual_seed(train.seed)
        losses = train_causal_lm(model, encoded, train, tokenizer.pad_token_id, desc=f"train sert round {round_}",
                                 checkpoint_dir=paths.CHECKPOINTS / f"train-sert-round{round_}",
                                 on_step=live.shifted(len(curve)))
        curve += losses
        n_examples = len(encoded)
        stats.append({"round": round_, "samples": funnel["samples"], "selected": funnel["selected"]})
        log(f"train sert round {round_}: {format_funnel(funnel)}; {len(losses)} steps")
    return n_examples, losses, stats
