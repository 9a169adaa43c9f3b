"""StrategyQA (yes/no), as Fine-tune-CoT and the paper use it: BIG-bench's ``task.json``.

Source: ``task.source`` is a local BIG-bench ``task.json``; null downloads the same file from
BIG-bench's repository through ``datasets``. (Hub re-uploads of StrategyQA reorder and re-split
the questions, which would break Fine-tune-CoT's published split and the matching of its teacher
files by index, so the default reads the original file.) Example ids are the indices in that
file, which are Fine-tune-CoT's ``sample_index``.
"""

from __future__ import annotations

import re

from sert.errors import DataError, TaskError
from sert.tasks.base import DatasetTask, Example, read_json_file
from sert.tasks.registry import register_task

BIG_BENCH_URL = (
    "https://raw.githubusercontent.com/google/BIG-bench/main/bigbench/benchmark_tasks/strategyqa/task.json"
)
# Fine-tune-CoT's candidate rule: lowercase, these characters become spaces, split, keep yes/no.
_SEPARATORS = re.compile(r"[\"'\n.:,\s]+")


def yes_no_candidates(text: str) -> list[str]:
    """Every "yes"/"no" word in ``text``, in order (Fine-tune-CoT's StrategyQA candidates)."""
    return [word for word in _SEPARATORS.split(text.lower()) if word in ("yes", "no")]


@register_task
class StrategyQA(DatasetTask):
    """StrategyQA from BIG-bench (2,290 questions; Fine-tune-CoT split 1,603 / 687 with seed 0)."""

    name = "strategyqa"
    answer_space = ("yes", "no")

    def candidates(self, text: str) -> list[str]:
        return yes_no_candidates(text)

    def read_source(self) -> list[Example]:
        source = self.config.source or BIG_BENCH_URL
        if source.startswith(("http://", "https://")):
            from sert.tasks.hub import load_hub

            rows = list(load_hub("json", data_files=source, field="examples", split="train"))
        else:
            data = read_json_file(source)
            if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
                raise DataError(f'{source}: expected a BIG-bench task.json with an "examples" list')
            rows = data["examples"]
        return [self.check_answer(self.parse(row, f"{source}: example {i}", i), source) for i, row in enumerate(rows)]

    @staticmethod
    def parse(row, where: str, index: int) -> Example:
        if not isinstance(row, dict) or not isinstance(row.get("input"), str):
            raise DataError(f'{where}: expected an object with an "input" string')
        scores = row.get("target_scores")
        if not isinstance(scores, dict) or not scores:
            raise DataError(f'{where}: missing "target_scores"')
        best = [label for label, score in scores.items() if score == 1]
        answer = best[0].strip().lower() if len(best) == 1 else f"<{len(best)} labels scored 1>"
        target = row.get("target") if isinstance(row.get("target"), str) else ""
        # BIG-bench targets read "Yes. <supporting facts>": the facts are a human reference rationale.
        facts = re.sub(r"^\s*(yes|no)\b[.,]?\s*", "", target, flags=re.IGNORECASE).strip()
        return Example(id=str(index), question=row["input"].strip(), answer=answer, reference=facts or None)

    def oracle_rationale(self, example: Example) -> str:
        raise TaskError(
            "strategyqa: BIG-bench's supporting facts state no answer, so there is no oracle teacher; "
            "use teacher.backend import (e.g. Fine-tune-CoT's teacher file) or openai"
        )

    def check_answer(self, example: Example, source: str) -> Example:
        self.validate(example, f"{source}: example {example.id}")
        return example
