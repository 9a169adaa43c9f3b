"""filter: the paper's four filters, one reasoning path per question, the self-training set
(sert/selftrain.py's ``select_paths``, which iterated SERT's later rounds use too)."""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.filtering import filter_examples, format_funnel, render_filter_examples
from sert.text import kept_reasoning
from sert.io import read_jsonl, write_json, write_jsonl, write_text
from sert.samplers import Sample
from sert.selftrain import answer_check, select_paths
from sert.tasks import get_task
from stages.common import ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/self_train.jsonl (one filtered path per question), metrics/filter.json (the funnel)
    and metrics/filter_examples.md (ten real samples each filter removed and ten it kept)."""
    p = load_params(params)
    examples = {ex.id: ex for ex in read_examples(paths.TRAIN)}
    fields = tuple(Sample.__dataclass_fields__)
    samples = [Sample(**{k: r[k] for k in fields}) for r in read_jsonl(paths.SAMPLES, required=fields)]
    task = get_task(p.task)
    selected, funnel = select_paths(samples, p.filter, answer_check(task, examples))
    records = []
    for s in selected:
        ex = examples[s.id]
        records.append({"id": s.id, "question": ex.question, "answer": ex.answer,
                        "reasoning": kept_reasoning(s.text), "sample": s.text})
    write_jsonl(paths.SELF_TRAIN, records)
    write_json(paths.FILTER_METRICS, funnel)
    write_text(paths.FILTER_EXAMPLES, render_filter_examples(
        filter_examples(samples, p.filter), p.filter, {i: ex.question for i, ex in examples.items()}))
    typer.echo(f"filter: {format_funnel(funnel)} -> {paths.SELF_TRAIN}")
