"""base: the student before any SERT training, as a save_pretrained directory."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import typer

from sert import paths
from sert.io import atomic_path, write_json
from sert.modeling import build_tiny_model, load_student, save_student, tiny_tokenizer
from sert.tasks import get_task
from sert.config import TrainConfig
from sert.training import LiveLossCurve, encode_documents, final_loss, is_main_process, train_causal_lm, write_loss_curve
from stages.common import ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Pretrain the tiny student on the task's generated corpus (student.model: tiny), or
    load student.model from the Hub, a local directory or a GGUF file; save it to models/base."""
    p = load_params(params)
    started = time.time()
    metrics: dict = {"model": p.student.model}
    if p.student.model == "tiny":
        cfg = p.pretrain
        task = get_task(p.task)
        splits = {split: read_examples(paths.PREPARED / f"{split}.jsonl") for split in ("train", "test")}
        held_out = {ex.question for examples in splits.values() for ex in examples}
        docs = task.pretraining_corpus(random.Random(cfg.seed), cfg.documents, cfg.worked_fraction,
                                       cfg.fact_fraction, held_out, splits["train"])
        tokenizer = tiny_tokenizer(task, docs, cfg.vocab_size)
        model = build_tiny_model(cfg, tokenizer)
        examples = encode_documents(tokenizer, docs)
        losses = train_causal_lm(
            model, examples,
            TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, schedule=cfg.schedule, warmup_steps=cfg.warmup_steps,
                        weight_decay=cfg.weight_decay, max_length=cfg.n_positions, seed=cfg.seed,
                        checkpoint_every=cfg.checkpoint_every, length_grouping=cfg.length_grouping,
                        packing=cfg.packing,
                        precision=cfg.precision),
            tokenizer.pad_token_id, total_steps=cfg.steps, desc="pretrain", checkpoint_dir=paths.CHECKPOINTS / "base",
            on_step=LiveLossCurve(paths.PRETRAIN_CURVE),  # the curve so far, while pretraining runs
            section="pretrain",
        )
        metrics.update(pretrain_loss=final_loss(losses), steps=cfg.steps, documents=len(docs))
    else:
        model, tokenizer = load_student(p.student.model, p.student.trust_remote_code)
        losses = []  # no pretraining: an empty curve (the out must exist)
    if not is_main_process():  # `accelerate launch`: one process writes the outputs
        return
    write_loss_curve(paths.PRETRAIN_CURVE, losses)
    metrics["parameters"] = sum(t.numel() for t in model.parameters())
    with atomic_path(paths.BASE_MODEL, directory=True) as tmp:
        save_student(model, tokenizer, tmp)
    write_json(paths.BASE_METRICS, metrics)  # no wall time here: it would make `dvc metrics diff` noisy
    shutil.rmtree(paths.CHECKPOINTS / "base", ignore_errors=True)
    typer.echo(f"base: {p.student.model} ({metrics['parameters']:,} parameters) in "
               f"{time.time() - started:.1f} s -> {paths.BASE_MODEL}")
