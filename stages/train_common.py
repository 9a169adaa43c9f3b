"""What the train and train-sert stages share: where they write, how (prompt, target) texts become
training examples, and the outputs every trained variant has. It reads no params: the stages pass
the sections they read, so each stage's params are what its own module reads."""

from __future__ import annotations

from pathlib import Path

import torch

from sert import paths
from sert.io import atomic_path, write_json, write_text
from sert.modeling import load_student, save_student
from sert.config import TrainConfig
from sert.training import prompt_target, train_causal_lm


def write_loss_curve(path: Path, losses: list[float]) -> None:
    """One row per optimizer step, for `dvc plots show`."""
    write_text(path, "step,loss\n" + "".join(f"{i},{loss:.6g}\n" for i, loss in enumerate(losses, 1)))


def encode(tokenizer, texts: list[tuple[str, str]]):
    eos = [tokenizer.eos_token_id]
    return [prompt_target(tokenizer(prompt)["input_ids"], tokenizer(target)["input_ids"] + eos)
            for prompt, target in texts]


def train_on_texts(init: str, texts: list[tuple[str, str]], cfg: TrainConfig, desc: str, checkpoint_dir: Path,
                   trust_remote_code: bool, on_step=None):
    """Fine-tune the model saved at ``init`` on ``texts``: (model, tokenizer, examples, losses).
    ``on_step(step, loss)`` is called after every optimizer step (a LiveLossCurve)."""
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_student(init, trust_remote_code)
    examples = encode(tokenizer, texts)
    losses = train_causal_lm(model, examples, cfg, tokenizer.pad_token_id, desc=desc, checkpoint_dir=checkpoint_dir,
                             on_step=on_step)
    return model, tokenizer, examples, losses


def write_outputs(variant: str, model, tokenizer, examples: int, losses: list[float], curve: list[float]) -> Path:
    """models/<variant>, its loss curve (``curve``: every step) and metrics/train/<variant>.json
    (``losses``: the last training run's steps, whose last 5% give final_loss)."""
    out = paths.model(variant)
    with atomic_path(out, directory=True) as tmp:
        save_student(model, tokenizer, tmp)
    tail = losses[-max(1, len(losses) // 20):]
    write_loss_curve(paths.loss_curve(variant), curve)
    # Wall time goes to stdout only: in a metrics file it would make every `dvc metrics diff` noisy.
    write_json(paths.train_metrics(variant), {
        "examples": examples, "steps": len(losses), "final_loss": round(sum(tail) / len(tail), 4),
    })
    return out
