"""train-sert: self-training (the ``sert`` variant) and iterated SERT's later rounds.

Round 1 is the paper's: the base model self-trained on ``data/self_train.jsonl`` (what the sample
and filter stages selected). With ``sert.rounds: N > 1`` the stage goes on for rounds 2..N
(sert/rounds.py): each saves the model just trained to ``models/sert_rounds/round-<k-1>``, samples
the train questions from it with the training prompt, filters and selects with sert/selftrain.py's
``sample_filter_select`` (the configured ``sample.backend``; shards under
``.sert-cache/train-sert/round-<k>/``, so a killed run reuses the rounds it had sampled) and
self-trains it on the selected paths. The last round's model is ``models/sert``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import typer

from sert import paths
from sert.errors import EmptyResultError, ParamsError
from sert.io import atomic_path, read_json, read_jsonl, write_json
from sert.rounds import later_rounds
from sert.tasks import get_task
from sert.training import LiveLossCurve, is_main_process
from sert.variants import self_training_texts, train_on_texts, write_trained
from stages.common import ParamsOption, load_params, read_examples, stage

INIT, DATA = str(paths.BASE_MODEL), str(paths.SELF_TRAIN)
"""The model round 1 starts from and the data it learns from (dvc.yaml's ``train_sert`` deps)."""


@stage
def main(params: Path = ParamsOption) -> None:
    """Self-train the base model on data/self_train.jsonl, for sert.rounds rounds of sample, filter
    and self-train; write models/sert, models/sert_rounds and metrics/train/sert.json."""
    p = load_params(params)
    rounds = p.sert.rounds
    if rounds > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ParamsError("sert.rounds: more than 1 round runs in one process; run `sert train-sert` "
                          "without `accelerate launch`")
    texts = self_training_texts(read_jsonl(paths.SELF_TRAIN, required=("id", "question", "answer", "reasoning")),
                                p.prompts)
    if not texts:
        raise EmptyResultError(f"train sert: no training examples in {paths.SELF_TRAIN}")
    started = time.time()
    live = LiveLossCurve(paths.loss_curve("sert"))  # the curve so far, while training runs
    model, tokenizer, encoded, losses = train_on_texts(INIT, texts, p.train, "train sert", paths.CHECKPOINTS / "train-sert",
                                                       p.student.trust_remote_code, on_step=live)
    n_examples, curve = len(encoded), list(losses)
    if is_main_process():  # (several processes only with rounds == 1, checked above)
        funnel = read_json(paths.FILTER_METRICS)
        stats = [{"round": 1, "samples": funnel["samples"], "selected": n_examples}]
        with atomic_path(paths.ROUNDS, directory=True) as tmp:
            if rounds > 1:  # sert/rounds.py; `curve` gets every round's steps
                n_examples, losses, later = later_rounds(
                    model, tokenizer, rounds, read_examples(paths.TRAIN), get_task(p.task), p.prompts, p.sample,
                    p.filter, p.train, p.student.trust_remote_code, tmp, live, curve, log=typer.echo)
                stats += later
            write_json(tmp / "rounds.json", stats)
    if not is_main_process():  # `accelerate launch`: one process writes the outputs
        return
    # With several rounds: the curve has every round's steps, one after the other; the metrics
    # (steps, final_loss) are the last round's.
    out = write_trained("sert", model, tokenizer, n_examples, losses, curve)
    shutil.rmtree(paths.CHECKPOINTS / "train-sert", ignore_errors=True)
    for round_ in range(2, rounds + 1):
        shutil.rmtree(paths.CHECKPOINTS / f"train-sert-round{round_}", ignore_errors=True)
    shutil.rmtree(paths.ROUNDS_WORK, ignore_errors=True)
    typer.echo(f"train sert: {n_examples} examples, {len(losses)} steps in "
               f"{time.time() - started:.1f} s -> {out}")
