"""Self-training data: sample latent paths, filter them, select one path per question.

The paper's data step as one library function, ``sample_filter_select``, in two parts:
``sample_shards`` (sampling with the configured backend, sharded and resumable) and
``select_paths`` (the four filters and the selection, sert/filtering.py). The pipeline uses them
in two places:

- round 1: the ``sample`` stage runs ``sample_shards`` on the base model and assembles
  ``data/samples.jsonl``; the ``filter`` stage runs ``select_paths`` on that file;
- rounds 2..N of iterated SERT (sert/rounds.py): the ``train-sert`` stage runs the whole on the
  model it has just trained, with its shards under ``.sert-cache/``.

So every round honours ``sample.backend`` (this package's transformers decoder or vLLM) and every
round's sampling resumes from its finished shards after a kill (sert/shards.py). A shard is keyed
by the sampling params, the device, the prompts, the model's files and the sampling code, so it
is reused only by a run that would compute the very same records.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sert.config import FilterConfig, SampleConfig
from sert.errors import EmptyResultError
from sert.filtering import filter_samples, format_funnel
from sert.samplers import Progress, Sample, batches, open_sampler, resolve_device, sampler_class
from sert.shards import ShardedWriter, fingerprint

CODE = (*sorted(Path(__file__).with_name("samplers").glob("*.py")), Path(__file__).with_name("text.py"))
"""The code that determines a sample record, part of the shard key: every module of sert/samplers
(its ``.py`` files only: not the bytecode caches) and text.py (a record's kept_perplexity depends
on where its answer clause is found)."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def shard_key(cfg: SampleConfig, prompts: Sequence[tuple[str, str]], model_path: str | Path) -> str:
    """What determines the records: every sample param, the device, the prompts, the model's
    files and the sampling code."""
    return fingerprint([dataclasses.asdict(cfg), resolve_device(cfg.device), list(prompts)],
                       [Path(model_path), *[c for c in CODE if c.exists()]])


@dataclass
class SampleRun:
    """The shards of one sampling run (finished, still on disk)."""

    writer: ShardedWriter
    """Where the shards are; ``writer.records()`` reads them in question order, ``writer.assemble``
    writes them to one file and removes them."""
    resumed: int
    """Shards that were already there from a killed run and were not computed again."""

    def samples(self) -> list[Sample]:
        return [Sample(**record) for record in self.writer.records()]


def sample_shards(prompts: Sequence[tuple[str, str]], cfg: SampleConfig, work: Path, model_path: str | Path, *,
                  model=None, tokenizer=None, trust_remote_code: bool = False, desc: str = "sample",
                  log: Callable[[str], None] = print, warn: Callable[[str], None] = _stderr) -> SampleRun:
    """Sample ``branches x samples_per_branch`` paths for every ``(id, prompt)``, one shard per
    ``cfg.batch_size`` questions under ``work/<key>``, computing only the shards a killed run did
    not finish (``work`` holds one run: other keys' shards there are removed). The sampler
    (``sert.samplers.open_sampler``) is started only when a shard is missing. With a backend that
    loads checkpoints only (vllm) and an in-memory ``model``, the model is moved to the CPU first,
    so that the engine gets the GPU."""
    units = batches(len(prompts), cfg.batch_size)
    writer = ShardedWriter(work, shard_key(cfg, prompts, model_path), len(units))
    done = writer.done()
    if done:
        log(f"{desc}: resuming, {len(done)} of {len(units)} shards already in {writer.dir}")
    if len(done) == len(units):
        return SampleRun(writer, writer.fill(lambda unit: []))  # (nothing left to compute)
    if model is not None and not sampler_class(cfg.backend).in_memory:
        model.to("cpu")
    sampler = open_sampler(cfg, model_path, model, tokenizer, trust_remote_code)
    try:
        budget = sampler.plan([text for _, text in prompts])
        warning = budget.warning(getattr(sampler, "n_positions", None))
        if warning:
            warn(f"{desc}: {warning}")
        progress = Progress(len(prompts), desc, initial=sum(len(units[u]) for u in done))

        def compute(unit: int) -> list[dict]:
            chunk = units[unit]
            samples = sampler.sample([prompts[i][0] for i in chunk], [budget.prompt_ids[i] for i in chunk],
                                     [budget.max_new[i] for i in chunk])
            progress.update(len(chunk), sum(s.n_tokens for s in samples))
            return [s.to_json() for s in samples]

        try:
            resumed = writer.fill(compute, workers=sampler.workers)
        finally:
            progress.close()
    finally:
        sampler.close()
    return SampleRun(writer, resumed)


def answer_check(task, examples: dict) -> Callable[[Sample], bool]:
    """The task's correctness check of a sample's extracted answer against its question's gold
    answer (``examples``: question id -> Example); used only with ``filter.require_correct``."""
    return lambda s: task.is_correct(task.extract_answer(s.text), examples[s.id])


def select_paths(samples: Sequence[Sample], cfg: FilterConfig, is_correct: Callable[[Sample], bool] | None,
                 context: str = "", hint: str = "") -> tuple[list[Sample], dict]:
    """The four filters, then one path per question (sert/filtering.py): the selected samples in
    question order and the funnel. No survivor is an ``EmptyResultError`` (``context`` prefixes
    it, ``hint`` extends its advice)."""
    selected, funnel = filter_samples(samples, cfg, is_correct)
    if not selected:
        raise EmptyResultError(f"{context}no sample survived the filters ({format_funnel(funnel)}); "
                               f"loosen the filter params{hint}")
    return selected, funnel


def sample_filter_select(prompts: Sequence[tuple[str, str]], sample_cfg: SampleConfig, filter_cfg: FilterConfig,
                         is_correct: Callable[[Sample], bool] | None, work: Path, model_path: str | Path, *,
                         model=None, tokenizer=None, trust_remote_code: bool = False, desc: str = "sample",
                         log: Callable[[str], None] = print, context: str = "",
                         hint: str = "") -> tuple[list[Sample], dict, SampleRun]:
    """Sample (``sample_shards``), filter and select (``select_paths``): the selected samples, the
    funnel and the run (its shards stay in ``work`` until the caller removes them, so that a
    kill later in the caller's work reuses them)."""
    run = sample_shards(prompts, sample_cfg, work, model_path, model=model, tokenizer=tokenizer,
                        trust_remote_code=trust_remote_code, desc=desc, log=log)
    selected, funnel = select_paths(run.samples(), filter_cfg, is_correct, context, hint)
    return selected, funnel, run

