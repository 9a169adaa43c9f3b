"""The ``import`` teacher: rationales that already exist, read from a file.

Two formats, told apart by the file's suffix:
  * Fine-tune-CoT's teacher completion files (``D_<dataset>.json``): ``{"metadata", "data":
    {"<sample_index>": [{"question", "answer", "reasoning_completion", "completion", ...}]}}``;
    the rationale is ``reasoning_completion`` and the teacher's answer is its ``completion`` of
    "Therefore, the answer is", scored exactly as Fine-tune-CoT scores it (first candidate).
  * JSONL (any other suffix), one ``{"id" or "question", "rationale", "answer"?}`` per line; without ``answer`` the
    answer is extracted from the rationale.
Completions are matched to the prepared questions by id (when the record's question text, if
any, agrees up to whitespace), else by exact question text up to whitespace. Every completion of
a question is kept (Fine-tune-CoT's diverse reasoning has several).
"""

from __future__ import annotations

import json
from pathlib import Path

from sert.errors import DataError, ParamsError
from sert.io import read_jsonl
from sert.tasks import Example
from sert.teachers.base import Rationale, Teacher
from sert.teachers.registry import register_teacher

ANSWER_TRIGGER = "Therefore, the answer is"
"""Fine-tune-CoT's answer request; its completion is scored after it."""


def normalize_question(text: str) -> str:
    return " ".join(str(text).split())


def read_completions(path: str) -> list[dict]:
    """Records ``{id?, question?, rationale, scored}`` from either format (``scored`` is the text
    the task's extraction reads)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: teacher file not found")
    if file.suffix == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: not a valid JSON teacher file ({err})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            return list(_finetune_cot_records(data["data"], path))
        raise DataError(f'{path}: expected Fine-tune-CoT\'s {{"metadata", "data": {{...}}}} or a .jsonl file')
    records = []
    for line, r in enumerate(read_jsonl(path, required=("rationale",)), start=1):
        if "id" not in r and "question" not in r:
            raise DataError(f'{path}:{line}: needs "id" or "question"')
        answer = r.get("answer")
        scored = f"{ANSWER_TRIGGER} {answer}" if answer not in (None, "") else str(r["rationale"])
        records.append({"id": None if r.get("id") is None else str(r["id"]), "question": r.get("question"),
                        "rationale": str(r["rationale"]), "scored": scored})
    return records


def _finetune_cot_records(data: dict, path: str):
    for key, completions in data.items():
        if not isinstance(completions, list):
            raise DataError(f"{path}: data[{key!r}] must be a list of completions")
        for c in completions:
            missing = [f for f in ("question", "reasoning_completion", "completion") if f not in c]
            if missing:
                raise DataError(f"{path}: data[{key!r}] lacks {missing[0]!r}")
            yield {"id": str(c.get("sample_index", key)), "question": c["question"],
                   "rationale": c["reasoning_completion"].strip(), "scored": ANSWER_TRIGGER + c["completion"]}


@register_teacher
class ImportTeacher(Teacher):
    """Rationales from an existing completion file (``teacher.source``)."""

    name = "import"

    report: dict = {}

    def extra_metrics(self) -> dict:
        """How many prepared questions had no completion, and how many matched by text, not id."""
        return dict(self.report)

    def matched(self, examples: list[Example]) -> tuple[list[tuple[Example, list[dict]]], int, int]:
        """Each example with its completions (by id, else by question text), the number of
        examples without any, and the number matched by question text."""
        if not self.config.source:
            raise ParamsError("teacher.source: the import backend needs a completion file (Fine-tune-CoT .json or .jsonl)")
        records = read_completions(self.config.source)
        by_id: dict[str, list[dict]] = {}
        by_text: dict[str, list[dict]] = {}
        for r in records:
            if r["id"] is not None:
                by_id.setdefault(r["id"], []).append(r)
            if r["question"] is not None:
                by_text.setdefault(normalize_question(r["question"]), []).append(r)
        out, missing, by_question = [], 0, 0
        for ex in examples:
            text = normalize_question(ex.question)
            matched = [r for r in by_id.get(ex.id, []) if r["question"] is None or normalize_question(r["question"]) == text]
            if not matched:
                matched = by_text.get(text, [])
                by_question += bool(matched)
            if not matched:
                missing += 1
            out.append((ex, matched))
        return out, missing, by_question

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        matched, missing, by_question = self.matched(examples)
        out = []
        for ex, records in matched:
            for r in records:
                answer = self.task.extract_answer(r["scored"])
                out.append(Rationale(ex.id, r["rationale"], answer, self.task.is_correct(answer, ex)))
        if not out:
            raise DataError(f"{self.config.source}: no completion matches any prepared question (by id or question text)")
        self.report = {"questions": len(examples), "questions_without_rationale": missing,
                       "matched_by_question_text": by_question}
        return out

    def test_outputs(self, examples: list[Example]) -> dict[str, str] | str:
        """The first completion of each covered test question as the teacher wrote it: rationale,
        a line break, then the scored answer ("Therefore, the answer is no."), as Table II scores it."""
        matched, _, _ = self.matched(examples)
        outputs = {ex.id: records[0]["rationale"] + "\n" + records[0]["scored"]
                   if records[0]["scored"] != records[0]["rationale"] else records[0]["rationale"]
                   for ex, records in matched if records}
        return outputs or f"{self.config.source} holds no completion for a test question"
