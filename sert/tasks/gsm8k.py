"""GSM8K: grade-school math word problems with numeric answers (beyond the paper's datasets).

Source: ``task.source`` is a directory with the original ``train.jsonl`` and ``test.jsonl``
(``{"question", "answer"}``; the answer is a worked solution ending in ``#### <number>``); null
loads ``openai/gsm8k`` (config ``main``) from the Hub. The worked solution, with its
``<<48/2=24>>`` calculator annotations removed, is the reference rationale.
"""

from __future__ import annotations

import re
from pathlib import Path

from sert.errors import DataError
from sert.io import read_jsonl
from sert.tasks.base import DatasetTask, Example
from sert.tasks.registry import register_task

HUB_ID = "openai/gsm8k"
_NUMBER = re.compile(r"(?<![\w.])-?\$?\d[\d,]*(?:\.\d+)?")
_CALCULATOR = re.compile(r"<<[^>]*>>")


def normalize_number(text: str) -> str | None:
    """"$1,234.50" -> "1234.5", "72.0" -> "72"; None when ``text`` is not a number."""
    cleaned = text.replace(",", "").replace("$", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def number_candidates(text: str) -> list[str]:
    """Numbers in ``text`` in order, normalized ("1,000" and "1000.0" are both "1000")."""
    found = (normalize_number(m.group()) for m in _NUMBER.finditer(text))
    return [n for n in found if n is not None]


@register_task
class GSM8K(DatasetTask):
    """GSM8K (train 7,473 / test 1,319), answers compared as numbers."""

    name = "gsm8k"

    def candidates(self, text: str) -> list[str]:
        return number_candidates(text)

    def validate(self, example: Example, where: str) -> None:
        if normalize_number(example.answer) != example.answer:
            raise DataError(f"{where}: record {example.id!r} has answer {example.answer!r}, expected a number")

    def read_source(self) -> dict[str, list[Example]]:
        source = self.config.source
        if source is None:
            from sert.tasks.hub import load_hub

            return {split: [self.example(r, f"{HUB_ID} {split}: record {i}", f"{split}-{i}")
                            for i, r in enumerate(load_hub(HUB_ID, name="main", split=split))]
                    for split in ("train", "test")}
        directory = Path(source)
        out = {}
        for split in ("train", "test"):
            path = directory / f"{split}.jsonl"
            if not path.is_file():
                raise DataError(f"{path}: file not found (task.source must hold train.jsonl and test.jsonl)")
            out[split] = [self.example(r, f"{path}:{i + 1}", f"{split}-{i}")
                          for i, r in enumerate(read_jsonl(path, required=("question", "answer")))]
        return out

    def example(self, record: dict, where: str, default_id: str) -> Example:
        solution = str(record["answer"])
        if "####" not in solution:
            raise DataError(f'{where}: answer has no "#### <number>" line')
        worked, _, final = solution.rpartition("####")
        answer = normalize_number(final) or final.strip()
        reference = " ".join(_CALCULATOR.sub("", worked).split())
        ex = Example(id=str(record.get("id", default_id)), question=str(record["question"]).strip(),
                     answer=answer, reference=reference or None)
        self.validate(ex, where)
        return ex
