"""sample: the paper's latent-path sampling over the training questions, sharded and resumable.

Each batch of ``sample.batch_size`` questions becomes one shard under
``.sert-cache/sample/<hash>/`` (gitignored, outside DVC's outputs so that ``dvc repro`` does
not delete it before the stage runs); the hash covers the base model's files, the train
questions, the prompt, every ``sample`` param and the sampling code. A killed run reruns only
the missing shards; the final ``data/samples.jsonl`` is assembled atomically and is identical to
an uninterrupted run's (per-question seeding). The work directory is removed on success.
Sampling itself is sert/selftrain.py's ``sample_shards``, which iterated SERT's later rounds use too.
"""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from sert import paths
from sert.errors import ParamsError
from sert.samplers import resolve_device
from sert.selftrain import sample_shards
from stages.common import ParamsOption, load_params, read_examples, stage



def check_device(cfg) -> None:
    """The hf backend's device exists on this machine (the values themselves are sert.config's)."""
    if cfg.backend == "hf" and resolve_device(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError(f"sample.device: {cfg.device!r} but CUDA is not available; use auto or cpu")


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/samples.jsonl: branches x samples_per_branch continuations per train question,
    each with its branch token, text, token count, perplexity (whole and kept part) and rep-2."""
    p = load_params(params)
    check_device(p.sample)
    examples = read_examples(paths.TRAIN)
    prompts = [(ex.id, p.prompts.zero_shot.format(question=ex.question)) for ex in examples]
    run = sample_shards(prompts, p.sample, paths.SAMPLE_WORK, paths.BASE_MODEL, trust_remote_code=p.student.trust_remote_code,
                        log=typer.echo, warn=lambda message: typer.echo(message, err=True))
    count = run.writer.assemble(paths.SAMPLES)
    typer.echo(f"sample: {count} samples for {len(examples)} questions -> {paths.SAMPLES}"
               + (f" ({run.resumed} shards resumed)" if run.resumed else ""))
