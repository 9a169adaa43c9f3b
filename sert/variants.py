"""The variants' training: the texts each learns from, training on them, and what a trained
variant writes (their evaluation: sert/model_eval.py).

The stages (``train``, ``train-sert``) and the studies under ``results/`` call these, so a variant
is trained one way everywhere:

- ``finetune``: the base model on the labels (``Question: q. Answer: a.``);
- ``rd``: the base model on the teacher's rationales (the kept ones, ``keeps_rationale``);
- ``sert``: the base model on its own filtered paths (``data/self_train.jsonl``);
- ``sert_rd``: the SERT model on the teacher's rationales.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sert import paths
from sert.config import PromptConfig, TrainConfig
from sert.formats import distill_text, finetune_text, keeps_rationale, self_train_text
from sert.io import atomic_path, write_json
from sert.modeling import load_student, save_student
from sert.tasks import Example
from sert.training import TrainExample, final_loss, prompt_target, train_causal_lm, write_loss_curve

VARIANT_INPUTS = {
    "finetune": (str(paths.BASE_MODEL), str(paths.TRAIN)),
    "rd": (str(paths.BASE_MODEL), str(paths.TEACHER)),
    "sert_rd": (str(paths.model("sert")), str(paths.TEACHER)),
}
"""The ``train`` stage's variants: (the model each starts from, the data it learns from); dvc.yaml's
``train`` foreach mirrors this table (a test keeps them in step). ``sert`` is the ``train-sert``
stage: with ``sert.rounds > 1`` it also samples and filters."""


# -- training texts ------------------------------------------------------------------------------
def finetune_texts(examples: list[Example], prompts: PromptConfig) -> list[tuple[str, str]]:
    """Labels-only fine-tuning: one (prompt, target) per training question."""
    return [finetune_text(ex, prompts) for ex in examples]


def distill_texts(examples: list[Example], rationales: list[dict], prompts: PromptConfig,
                  only_correct: bool) -> list[tuple[str, str]]:
    """Distillation (``rd``, ``sert_rd``): one text per kept rationale (records with ``id``,
    ``rationale``, ``correct``) of a training question, in the rationales' order."""
    by_id = {ex.id: ex for ex in examples}
    return [distill_text(by_id[r["id"]], r["rationale"], prompts) for r in rationales
            if r["id"] in by_id and keeps_rationale(r["correct"], only_correct)]


def self_training_texts(records: list[dict], prompts: PromptConfig) -> list[tuple[str, str]]:
    """Self-training: one text per selected path (records of ``data/self_train.jsonl``: ``id``,
    ``question``, ``answer``, ``reasoning``), the gold answer appended."""
    return [self_train_text(Example(r["id"], r["question"], r["answer"]), r["reasoning"], prompts) for r in records]


# -- training ------------------------------------------------------------------------------------
def encode_texts(tokenizer, texts: list[tuple[str, str]]) -> list[TrainExample]:
    """(prompt, target) texts as token ids with the loss on the target and the end token after it."""
    eos = [tokenizer.eos_token_id]
    return [prompt_target(tokenizer(prompt)["input_ids"], tokenizer(target)["input_ids"] + eos)
            for prompt, target in texts]


def train_on_texts(init: str | Path, texts: list[tuple[str, str]], cfg: TrainConfig, desc: str,
                   checkpoint_dir: Path | None, trust_remote_code: bool, on_step=None):
    """Fine-tune the model saved at ``init`` on ``texts``: (model, tokenizer, examples, losses).
    ``on_step(step, loss)`` is called after every optimizer step (a ``LiveLossCurve``)."""
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_student(init, trust_remote_code)
    examples = encode_texts(tokenizer, texts)
    losses = train_causal_lm(model, examples, cfg, tokenizer.pad_token_id, desc=desc, checkpoint_dir=checkpoint_dir,
                             on_step=on_step)
    return model, tokenizer, examples, losses


def write_trained(variant: str, model, tokenizer, examples: int, losses: list[float], curve: list[float]) -> Path:
    """models/<variant>, its loss curve (``curve``: every step) and metrics/train/<variant>.json
    (``losses``: the last training run's steps, which give ``final_loss``)."""
    out = paths.model(variant)
    with atomic_path(out, directory=True) as tmp:
        save_student(model, tokenizer, tmp)
    write_loss_curve(paths.loss_curve(variant), curve)
    # Wall time goes to stdout only: in a metrics file it would make every `dvc metrics diff` noisy.
    write_json(paths.train_metrics(variant), {"examples": examples, "steps": len(losses),
                                              "final_loss": final_loss(losses)})
    return out


# -- a variant that is not trained ----------------------------------------------------------------
def write_not_trained(variant: str, reason: str) -> Path:
    """models/<variant> holding only why it was not trained (``paths.not_trained``), an empty loss
    curve and metrics/train/<variant>.json ``{"trained": false, "reason"}``: the pipeline's outputs
    all exist, and evaluation and the report say why the variant has no numbers."""
    out = paths.model(variant)
    with atomic_path(out, directory=True) as tmp:
        write_json(tmp / paths.not_trained(variant).name, {"variant": variant, "reason": reason})
    write_loss_curve(paths.loss_curve(variant), [])
    write_json(paths.train_metrics(variant), {"trained": False, "reason": reason})
    return out
