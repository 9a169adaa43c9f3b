"""CommonsenseQA (five choices A-E), verbalized the Fine-tune-CoT way:
``{stem} Answer choices: (A) x, (B) y, (C) z, (D) w, (E) v.``

Source: ``task.source`` is a directory with the original ``train_rand_split.jsonl`` (train,
9,741) and ``dev_rand_split.jsonl`` (test, 1,221: the labelled test set is not public); null
loads ``tau/commonsense_qa`` from the Hub (train and validation splits, the same questions).
"""

from __future__ import annotations

import re
from pathlib import Path

from sert.errors import DataError
from sert.io import read_jsonl
from sert.tasks import register_task
from sert.tasks.base import DatasetTask, Example

HUB_ID = "tau/commonsense_qa"
LABELS = ("A", "B", "C", "D", "E")
FILES = {"train": "train_rand_split.jsonl", "test": "dev_rand_split.jsonl"}
# A choice is "(C)", or a capital A-E standing alone: not inside a word ("America", "Every"),
# not an article opening a phrase ("A person would..."), not a contraction.
_CHOICE = re.compile(r"\(([A-E])\)|(?<![\w'’(])([A-E])(?![\w'’])(?!\s+[a-z])")


def choice_candidates(text: str) -> list[str]:
    """Choice letters mentioned in ``text``, in order (Fine-tune-CoT's rule without its flaw of
    matching any capital A-E, also inside words)."""
    return [a or b for a, b in _CHOICE.findall(text)]


def verbalize(stem: str, choices: list[str]) -> str:
    listed = ", ".join(f"({label}) {text}" for label, text in zip(LABELS, choices))
    return f"{stem.strip()} Answer choices: {listed}."


@register_task
class CommonsenseQA(DatasetTask):
    """CommonsenseQA 1.11 (train 9,741 / dev 1,221 used as test, as in Fine-tune-CoT and the paper)."""

    name = "commonsenseqa"
    answer_space = LABELS

    def candidates(self, text: str) -> list[str]:
        return choice_candidates(text)

    def read_source(self) -> dict[str, list[Example]]:
        source = self.config.source
        if source is None:
            from sert.tasks.hub import load_hub

            hub = {"train": "train", "test": "validation"}
            return {split: [self.example(self.from_hub(r), f"{HUB_ID} {name}: record {i}")
                            for i, r in enumerate(load_hub(HUB_ID, split=name))]
                    for split, name in hub.items()}
        directory = Path(source)
        if not directory.is_dir():
            raise DataError(f"{source}: expected a directory holding {FILES['train']} and {FILES['test']}")
        out = {}
        for split, filename in FILES.items():
            path = directory / filename
            if not path.is_file():
                raise DataError(f"{path}: file not found (task.source must hold {FILES['train']} and {FILES['test']})")
            out[split] = [self.example(record, f"{path}:{line}") for line, record in
                          enumerate(read_jsonl(path, required=("id", "question", "answerKey")), start=1)]
        return out

    @staticmethod
    def from_hub(record: dict) -> dict:
        """The Hub's flat layout, in the original files' nested one."""
        choices = [{"label": lab, "text": txt} for lab, txt in zip(record["choices"]["label"], record["choices"]["text"])]
        return {"id": record["id"], "answerKey": record["answerKey"],
                "question": {"stem": record["question"], "choices": choices}}

    def example(self, record: dict, where: str) -> Example:
        question = record.get("question")
        if not isinstance(question, dict) or not isinstance(question.get("stem"), str):
            raise DataError(f'{where}: "question" must be an object with a "stem"')
        choices = question.get("choices")
        if not isinstance(choices, list) or [c.get("label") if isinstance(c, dict) else None for c in choices] != list(LABELS):
            raise DataError(f"{where}: expected five choices labelled A-E")
        texts = [str(c.get("text", "")).strip() for c in choices]
        ex = Example(id=str(record["id"]), question=verbalize(question["stem"], texts),
                     answer=str(record["answerKey"]).strip(), choices=texts)
        self.validate(ex, where)
        return ex
