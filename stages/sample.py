"""sample: the paper's latent-path sampling over the training questions, sharded and resumable.

Each batch of ``sample.batch_size`` questions becomes one shard under
``.sert-cache/sample/<hash>/`` (gitignored, outside DVC's outputs so that ``dvc repro`` does
not delete it before the stage runs); the hash covers the base model's files, the train
questions, the prompt, every ``sample`` param and the sampling code. A killed run reruns only
the missing shards; the final ``data/samples.jsonl`` is assembled atomically and is identical to
an uninterrupted run's (per-question seeding). The work directory is removed on success.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import typer

from sert.errors import ParamsError
from sert.modeling import load_student
from sert.sampling import HFSampler, Progress, batches, resolve_device
from sert.shards import ShardedWriter, fingerprint
from stages.common import BASE_MODEL, PREPARED, SAMPLES, ParamsOption, load_params, read_examples, stage

WORK = Path(".sert-cache/sample")
# text.py too: the records' kept_perplexity depends on where its answer clause is found.
CODE = [Path(__file__).resolve().parents[1] / "sert" / name for name in ("sampling.py", "sampling_vllm.py", "text.py")]


def check_device(cfg) -> None:
    """The hf backend's device exists on this machine (the values themselves are sert.config's)."""
    if cfg.backend == "hf" and resolve_device(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError(f"sample.device: {cfg.device!r} but CUDA is not available; use auto or cpu")


def make_sampler(p):
    """The configured backend; vLLM is imported only when asked for."""
    if p.sample.backend == "vllm":
        from sert.sampling_vllm import VllmSampler

        return VllmSampler(str(BASE_MODEL), p.sample, trust_remote_code=p.student.trust_remote_code)
    model, tokenizer = load_student(str(BASE_MODEL), p.student.trust_remote_code)
    return HFSampler(model.to(resolve_device(p.sample.device)), tokenizer, p.sample)


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/samples.jsonl: branches x samples_per_branch continuations per train question,
    each with its branch token, text, token count, perplexity (whole and kept part) and rep-2."""
    p = load_params(params)
    check_device(p.sample)
    examples = read_examples(PREPARED / "train.jsonl")
    prompts = [(ex.id, p.prompts.zero_shot.format(question=ex.question)) for ex in examples]
    units = batches(len(prompts), p.sample.batch_size)
    key = fingerprint([dataclasses.asdict(p.sample), resolve_device(p.sample.device), prompts],
                      [BASE_MODEL, *[c for c in CODE if c.exists()]])
    writer = ShardedWriter(WORK, key, len(units))
    done = writer.done()
    if done:
        typer.echo(f"sample: resuming, {len(done)} of {len(units)} shards already in {writer.dir}")
    sampler = make_sampler(p)
    budget = sampler.plan([text for _, text in prompts])
    warning = budget.warning(getattr(sampler, "n_positions", None))
    if warning:
        typer.echo(f"sample: {warning}", err=True)
    progress = Progress(len(prompts), "sample", initial=sum(len(units[u]) for u in done))

    def compute(unit: int) -> list[dict]:
        chunk = units[unit]
        samples = sampler.sample([prompts[i][0] for i in chunk], [budget.prompt_ids[i] for i in chunk],
                                 [budget.max_new[i] for i in chunk])
        progress.update(len(chunk), sum(s.n_tokens for s in samples))
        return [s.to_json() for s in samples]

    try:
        count, resumed = writer.run(compute, SAMPLES)
    finally:
        progress.close()
    typer.echo(f"sample: {count} samples for {len(examples)} questions -> {SAMPLES}"
               + (f" ({resumed} shards resumed)" if resumed else ""))
