"""sample: the paper's latent-path sampling over the training questions."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from sert.io import write_jsonl
from sert.modeling import load_student
from sert.sampling import sample_latent_paths
from stages.common import BASE_MODEL, PREPARED, SAMPLES, ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/samples.jsonl: branches x samples_per_branch continuations per train question,
    each with its branch token, text, token count, perplexity and rep-2."""
    p = load_params(params)
    torch.manual_seed(p.sample.seed)
    model, tokenizer = load_student(str(BASE_MODEL))
    examples = read_examples(PREPARED / "train.jsonl")
    prompts = [(ex.id, p.prompts.zero_shot.format(question=ex.question)) for ex in examples]
    count = write_jsonl(SAMPLES, (s.to_json() for s in sample_latent_paths(model, tokenizer, prompts, p.sample)))
    typer.echo(f"sample: {count} samples for {len(examples)} questions -> {SAMPLES}")
