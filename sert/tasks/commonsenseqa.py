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
from sert.tasks.base import DatasetTask, Example
from sert.tasks.registry import register_task
from sert.text import split_answer_clause

HUB_ID = "tau/commonsense_qa"
LABELS = ("A", "B", "C", "D", "E")
FILES = {"train": "train_rand_split.jsonl", "test": "dev_rand_split.jsonl"}
# A choice is "(C)", or a capital A-E standing alone: not inside a word ("America", "Every"),
# not a contraction, and for "A" not an article opening a phrase ("A person would..."). B-E are
# not English words, so "B because ..." and "C and not A" name B and C.
_CHOICE = re.compile(r"\(([A-E])\)|(?<![\w'’(])([B-E]|A(?!\s+[a-z]))(?![\w'’])")
# Right after the answer prefix a lone letter is the answer even before a lowercase word
# ("the answer is A because ..."), unless "A" reads as an article ("the answer is a person ...").
_LEAD = re.compile(r"[\s:]*\(?([A-E])(?![\w'’])")
_CONNECTIVE = re.compile(r"\)?[\s.,;:!)]*(?:$|[^a-z\s]|(?:because|since|as|and|or|but|not|so|is|was|which|"
                         r"for|with|in|if|would|seems|makes)\b)")


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

    def extract_answer(self, text: str) -> str | None:
        """Fine-tune-CoT's rule (first candidate after the answer prefix, else the last one), with a
        letter standing right after the prefix taken even before a lowercase word ("So the
        answer is A because ...")."""
        _, after = split_answer_clause(text)
        if after is not None:
            lead = _LEAD.match(after)
            if lead and (lead.group(1) != "A" or _CONNECTIVE.match(after, lead.end())):
                return lead.group(1)
        return super().extract_answer(text)

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
