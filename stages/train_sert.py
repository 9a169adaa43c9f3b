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

import torch
import typer

from sert import paths
from sert.errors import EmptyResultError, ParamsError
from sert.filtering import format_funnel
from sert.formats import fill_prompt, self_train_text
from sert.io import atomic_path, read_json, read_jsonl, write_json
from sert.modeling import save_student
from sert.rounds import round_sample_config
from sert.selftrain import answer_check, sample_filter_select
from sert.tasks import Example, get_task
from sert.training import LiveLossCurve, is_main_process, train_causal_lm
from stages.common import ParamsOption, load_params, read_examples, stage
from stages.train_common import encode, train_on_texts, write_outputs

INIT, DATA = str(paths.BASE_MODEL), str(paths.SELF_TRAIN)
"""The model round 1 starts from and the data it learns from (dvc.yaml's ``train_sert`` deps)."""


def self_training_texts(prompts) -> list[tuple[str, str]]:
    """Round 1's (prompt, target) texts: the filter stage's selected paths in the paper's format."""
    records = read_jsonl(paths.SELF_TRAIN, required=("id", "question", "answer", "reasoning"))
    return [self_train_text(Example(r["id"], r["question"], r["answer"]), r["reasoning"], prompts) for r in records]


def next_round_texts(model, tokenizer, model_path: Path, p, round_: int) -> tuple[list[tuple[str, str]], dict]:
    """Sample the train questions from ``model`` (saved at ``model_path``, which vLLM loads) with the
    training prompt, filter with the same params, and return the self-training texts of the
    selected paths and the filter funnel."""
    examples = read_examples(paths.TRAIN)
    by_id = {ex.id: ex for ex in examples}
    # The self-trained model reasons after the prompt it was trained with, not the zero-shot one.
    prompts = [(ex.id, fill_prompt(p.prompts.train, ex.question)) for ex in examples]
    selected, funnel, _ = sample_filter_select(
        prompts, round_sample_config(p.sample, round_), p.filter, answer_check(get_task(p.task), by_id), paths.ROUNDS_WORK / f"round-{round_}", model_path,
        model=model, tokenizer=tokenizer, trust_remote_code=p.student.trust_remote_code,
        desc=f"sample round {round_}", log=typer.echo, context=f"train sert round {round_}: ",
        hint=" or lower sert.rounds")
    return [self_train_text(by_id[s.id], s.text, p.prompts) for s in selected], funnel


@stage
def main(params: Path = ParamsOption) -> None:
    """Self-train the base model on data/self_train.jsonl, for sert.rounds rounds of sample, filter
    and self-train; write models/sert, models/sert_rounds and metrics/train/sert.json."""
    p = load_params(params)
    rounds = p.sert.rounds
    if rounds > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ParamsError("sert.rounds: more than 1 round runs in one process; run `sert train-sert` "
                          "without `accelerate launch`")
    texts = self_training_texts(p.prompts)
    if not texts:
        raise EmptyResultError(f"train sert: no training examples in {paths.SELF_TRAIN}")
    started = time.time()
    live = LiveLossCurve(paths.loss_curve("sert"))  # the curve so far, while training runs
    model, tokenizer, examples, losses = train_on_texts(INIT, texts, p.train, "train sert", paths.CHECKPOINTS / "train-sert",
                                                        p.student.trust_remote_code, on_step=live)
    curve = list(losses)
    if is_main_process():  # (several processes only with rounds == 1, checked above)
        funnel = read_json(paths.FILTER_METRICS)
        stats = [{"round": 1, "samples": funnel["samples"], "selected": len(examples)}]
        with atomic_path(paths.ROUNDS, directory=True) as tmp:
            for round_ in range(2, rounds + 1):
                previous = tmp / f"round-{round_ - 1}"
                save_student(model, tokenizer, previous)
                texts, funnel = next_round_texts(model, tokenizer, previous, p, round_)
                examples = encode(tokenizer, texts)
                torch.manual_seed(p.train.seed)
                losses = train_causal_lm(model, examples, p.train, tokenizer.pad_token_id,
                                         desc=f"train sert round {round_}",
                                         checkpoint_dir=paths.CHECKPOINTS / f"train-sert-round{round_}",
                                         on_step=live.shifted(len(curve)))
                curve += losses
                stats.append({"round": round_, "samples": funnel["samples"], "selected": funnel["selected"]})
                typer.echo(f"train sert round {round_}: {format_funnel(funnel)}; {len(losses)} steps")
            write_json(tmp / "rounds.json", stats)
    if not is_main_process():  # `accelerate launch`: one process writes the outputs
        return
    # With several rounds: the curve has every round's steps, one after the other; the metrics
    # (steps, final_loss) are the last round's.
    out = write_outputs("sert", model, tokenizer, len(examples), losses, curve)
    shutil.rmtree(paths.CHECKPOINTS / "train-sert", ignore_errors=True)
    for round_ in range(2, rounds + 1):
        shutil.rmtree(paths.CHECKPOINTS / f"train-sert-round{round_}", ignore_errors=True)
    shutil.rmtree(paths.ROUNDS_WORK, ignore_errors=True)
    typer.echo(f"train sert: {len(examples)} examples, {len(losses)} steps in "
               f"{time.time() - started:.1f} s -> {out}")
