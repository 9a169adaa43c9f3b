"""Filters and metrics on real text: Fine-tune-CoT's released text-davinci-002 completions for
StrategyQA, the StrategyQA and CommonsenseQA questions (read by path from ../shared/data), and
CommonsenseQA answer extraction on the phrasings models write."""

import json

import pytest
from conftest import SHARED, gpt2_tokenizer

from sert.config import EvalConfig, PromptConfig, TeacherConfig
from sert.formats import fill_prompt
from sert.tasks import get_task
from sert.tasks.base import TaskConfig
from sert.teachers import get_teacher, teacher_row
from sert.text import pattern_failure, rep_n, words

FTCOT = SHARED / "data" / "finetune-cot"
COMPLETIONS = FTCOT / "D_strategy_qa.json"
STRATEGYQA = SHARED / "data" / "strategyqa" / "task.json"
CSQA = SHARED / "data" / "commonsenseqa"
needs_ftcot = pytest.mark.skipif(not (COMPLETIONS.is_file() and STRATEGYQA.is_file()),
                                 reason=f"needs {COMPLETIONS} and {STRATEGYQA} (the shared data folder)")
needs_csqa = pytest.mark.skipif(not CSQA.is_dir(), reason=f"needs {CSQA} (the shared data folder)")


def strategyqa():
    return get_task(TaskConfig(name="strategyqa", source=str(STRATEGYQA),
                               split_file=str(FTCOT / "strategy_qa__default.json")))


def rationales():
    data = json.loads(COMPLETIONS.read_text())["data"]
    return [c["reasoning_completion"] for completions in data.values() for c in completions]


@needs_ftcot
def test_teacher_row_reproduces_table_ii_len_and_rep():
    """Table II's teacher row (76.77 words, Rep 0.36): the released completions for the 687 test
    questions, each scored as rationale + "\\nTherefore, the answer is" + answer, by the code
    that scores the variants (through the teacher stage's row)."""
    task = strategyqa()
    test = task.load()["test"]
    teacher = get_teacher(TeacherConfig(backend="import", source=str(COMPLETIONS)), task)
    row = teacher_row(teacher, task, test, EvalConfig())
    assert row["available"] and row["n"] == row["test_questions"] == 687
    assert round(row["length"], 2) == 76.77 and round(row["repetition"], 2) == 0.36
    assert row["length_tokens"] is None and row["format_rate"] is None and row["reasoning_rate"] > 0.99
    # Lowercasing would give 0.38, \w+ words 78.17 / 0.40: the unit is case-kept whitespace words.
    outputs = teacher.test_outputs(test)
    lowered = sum(rep_n(t.lower().split(), 1) for t in outputs.values()) / len(outputs)
    assert round(lowered, 2) == 0.38


def test_openai_teacher_has_no_test_row(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "unused")  # the backend is built, never called: no server exists
    task = get_task(TaskConfig())
    teacher = get_teacher(TeacherConfig(backend="openai", model="m"), task)
    row = teacher_row(teacher, task, task.load()["test"][:3], EvalConfig())
    assert row == {"available": False, "backend": "openai",
                   "reason": "the openai backend has no test-split outputs (no requests are sent for test questions)"}


@needs_ftcot
def test_rep2_filter_in_words_keeps_most_teacher_rationales():
    texts = rationales()
    kept_words = sum(rep_n(words(t), 2) <= 0.2 for t in texts) / len(texts)
    assert 0.74 < kept_words < 0.77  # 75.5%
    try:
        tok = gpt2_tokenizer()
    except Exception as err:  # noqa: BLE001  (the offline GPT-2 BPE files are an optional package)
        pytest.skip(f"GPT-2 tokenizer unavailable offline: {err}")
    kept_tokens = sum(rep_n(tok(t)["input_ids"], 2) <= 0.2 for t in texts) / len(texts)
    assert 0.45 < kept_tokens < 0.50  # 47.6%: the token rule would drop half of the teacher's reasoning


@needs_ftcot
def test_pattern_filter_keeps_the_teachers_reasoning():
    texts = rationales()
    dropped = [t for t in texts if pattern_failure(t, 3) is not None]
    assert len(dropped) <= 2, dropped  # one: "Yes, both founders of Ben & Jerry's are still involved ..."


@needs_ftcot
def test_filled_prompts_on_real_questions_have_no_doubled_marks():
    task = strategyqa()
    questions = [ex.question for split in task.load().values() for ex in split]
    filled = [fill_prompt(PromptConfig().train, q) for q in questions]
    assert not [f for f in filled if "?." in f or ".." in f]
    assert sum(f.endswith("? Answer:") for f in filled) > 0.9 * len(filled)


@needs_csqa
def test_filled_prompts_on_real_csqa_questions():
    task = get_task(TaskConfig(name="commonsenseqa", source=str(CSQA), subset_train=50, subset_test=50))
    for ex in task.load()["test"]:
        filled = fill_prompt(PromptConfig().train, ex.question)
        assert filled.endswith(". Answer:") and ".. Answer:" not in filled


@pytest.mark.parametrize("text, expected", [
    ("So the answer is B because a bank keeps money.", "B"),
    ("The answer is C and not A", "C"),
    ("Therefore, the answer is A because people eat there.", "A"),
    ("The answer is: (D) mall, not (A) bank.", "D"),
    ("So the answer is A person would go to the (C) store.", "C"),   # "A" the article is no choice
    ("A person in America would Eat at (B) library", "B"),         # no letters inside words, no article
    ("Every Chair Building", None),
    ("I think B, not D.", "D"),                                     # no prefix: the last candidate
    ("The answer is\n\n E", "E"),
])
def test_commonsenseqa_takes_the_first_candidate_after_the_prefix(text, expected):
    assert get_task(TaskConfig(name="commonsenseqa")).extract_answer(text) == expected
