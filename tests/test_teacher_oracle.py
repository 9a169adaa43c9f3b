"""The oracle teacher made scarce and imperfect: teacher.coverage, teacher.error_rate, teacher.seed."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sert.errors import ParamsError, SertError
from sert.tasks import Example, TaskConfig, get_task
from sert.tasks.modsum import ORACLE_OPENING, question_text
from sert.config import TeacherConfig
from sert.teachers import get_teacher, kept_rationales, teacher_metrics
from sert.teachers.oracle import oracle_plan

ROOT = Path(__file__).resolve().parents[1]
STEP = re.compile(r"(\d) \+ (\d) = (\d)\.")


def modsum(n_train=200, n_test=20, n_terms=4):
    return get_task(TaskConfig(options={"modsum": {"n_train": n_train, "n_test": n_test, "n_terms": n_terms}}))


def steps_of(text: str) -> list[tuple[int, int, int]]:
    """The (a, b, written result) of each step of an oracle rationale, checking its whole shape."""
    assert text.startswith(ORACLE_OPENING), text
    body = text[len(ORACLE_OPENING):]
    steps = [tuple(int(x) for x in m.groups()) for m in STEP.finditer(body)]
    assert " ".join(f"{a} + {b} = {c}." for a, b, c in steps) == body, text
    return steps


# -- which questions: oracle_plan ---------------------------------------------------------------

def test_plan_is_deterministic_per_seed_and_differs_across_seeds():
    assert oracle_plan(400, 0.1, 0.3, 7) == oracle_plan(400, 0.1, 0.3, 7)
    assert oracle_plan(400, 0.1, 0.3, 7).covered != oracle_plan(400, 0.1, 0.3, 8).covered


def test_plan_defaults_cover_everything_and_get_nothing_wrong():
    plan = oracle_plan(400, 1.0, 0.0, 0)
    assert plan.covered == frozenset(range(400)) and plan.wrong == frozenset()


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 500), seed=st.integers(0, 2**32),
       c1=st.floats(0.001, 1.0), c2=st.floats(0.001, 1.0), e=st.floats(0.0, 0.999))
def test_plan_counts_and_nesting(n, seed, c1, c2, e):
    c1, c2 = sorted((c1, c2))
    small, large = oracle_plan(n, c1, e, seed), oracle_plan(n, c2, e, seed)
    for plan, c in ((small, c1), (large, c2)):
        assert len(plan.covered) == max(1, round(c * n))
        assert len(plan.wrong) == round(e * len(plan.covered))
        assert plan.wrong <= plan.covered <= set(range(n))
    # A question covered at the lower coverage is covered at the higher one, and wrong at both or
    # at neither: the coverage curve is paired.
    assert small.covered <= large.covered
    assert small.wrong == large.wrong & small.covered


# -- what a wrong rationale is: modsum.wrong_rationale -------------------------------------------

@settings(max_examples=300, deadline=None)
@given(terms=st.lists(st.integers(0, 9), min_size=2, max_size=8), seed=st.integers(0, 2**32))
def test_wrong_rationale_has_one_wrong_step_that_carries_to_a_wrong_answer(terms, seed):
    task = modsum(n_train=5, n_test=5, n_terms=len(terms))
    ex = Example("q", question_text(tuple(terms)), str(sum(terms) % 10))
    text = task.wrong_rationale(ex, random.Random(seed))
    steps = steps_of(text)
    # Same shape as the correct rationale: one step per term after the first, the question's terms
    # added in order, each step starting from the total the previous step wrote.
    assert len(steps) == len(terms) - 1 == len(steps_of(task.oracle_rationale(ex)))
    assert [b for _, b, _ in steps] == terms[1:] and steps[0][0] == terms[0]
    assert all(steps[i + 1][0] == steps[i][2] for i in range(len(steps) - 1))
    wrong = [i for i, (a, b, c) in enumerate(steps) if (a + b) % 10 != c]
    assert len(wrong) == 1, text
    answer = task.extract_answer(text)
    assert answer == str(steps[-1][2]) and answer != ex.answer and not task.is_correct(answer, ex)


def test_wrong_rationales_on_the_split_are_wrong_and_vary():
    task = modsum()
    train = task.load()["train"]
    texts = [task.wrong_rationale(ex, random.Random(i)) for i, ex in enumerate(train)]
    assert all(task.extract_answer(t) != ex.answer for t, ex in zip(texts, train))
    # The wrong step is spread over the chain, not always the same one.
    positions = {next(i for i, (a, b, c) in enumerate(steps_of(t)) if (a + b) % 10 != c) for t in texts}
    assert positions == {0, 1, 2}


# -- the oracle teacher ------------------------------------------------------------------------

def oracle(task, **kw) -> object:
    return get_teacher(TeacherConfig(backend="oracle", **kw), task)


def test_oracle_counts_scores_and_metrics():
    task = modsum()
    train = task.load()["train"]
    teacher = oracle(task, coverage=0.25, error_rate=0.3, seed=3)
    rationales = teacher.rationales(train)
    assert len(rationales) == 50  # round(0.25 * 200)
    metrics = teacher_metrics(rationales)
    assert metrics["n"] == 50 and metrics["n_correct"] == 50 - 15  # round(0.3 * 50) wrong
    assert teacher.extra_metrics() == {"questions": 200, "covered": 50, "wrong": 15}
    by_id = {ex.id: ex for ex in train}
    for r in rationales:
        ex = by_id[r.id]
        # Scored by extraction, not by fiat: correct exactly when the text reaches the gold answer.
        assert r.answer == task.extract_answer(r.rationale) and r.correct == (r.answer == ex.answer)
        if r.correct:
            assert r.rationale == task.oracle_rationale(ex)
    # Kept in the training questions' order (as with full coverage).
    order = [ex.id for ex in train]
    assert [r.id for r in rationales] == sorted((r.id for r in rationales), key=order.index)
    assert kept_rationales(rationales, only_correct=True) == 35
    assert kept_rationales(rationales, only_correct=False) == 50


def test_oracle_is_paired_across_coverage():
    """For one seed, a question's rationale is the same text, right or wrong, at every coverage that covers it."""
    task = modsum()
    train = task.load()["train"]
    small = {r.id: r for r in oracle(task, coverage=0.1, error_rate=0.5, seed=1).rationales(train)}
    large = {r.id: r for r in oracle(task, coverage=0.5, error_rate=0.5, seed=1).rationales(train)}
    assert set(small) < set(large)
    assert sum(not r.correct for r in small.values()) == 10 and sum(not r.correct for r in large.values()) == 50
    assert all(large[i] == r for i, r in small.items())


def test_oracle_test_row_errs_on_error_rate_of_all_test_questions():
    task = modsum()
    test = task.load()["test"]
    outputs = oracle(task, coverage=0.1, error_rate=0.25, seed=0).test_outputs(test)
    assert set(outputs) == {ex.id for ex in test}  # coverage is about training data only
    wrong = [ex for ex in test if task.extract_answer(outputs[ex.id]) != ex.answer]
    assert len(wrong) == 5  # 0.25 * 20


# -- validation ------------------------------------------------------------------------------

def params_file(tmp_path, task=None, **teacher) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if task:
        params["task"]["name"] = task
    params["teacher"].update(teacher)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize("teacher, message", [
    ({"coverage": 0.0}, r"^teacher\.coverage: must be in \(0, 1\], got 0\.0$"),
    ({"coverage": 1.5}, r"^teacher\.coverage: must be in \(0, 1\], got 1\.5$"),
    ({"coverage": -0.1}, r"^teacher\.coverage: must be in \(0, 1\]"),
    ({"error_rate": 1.0}, r"^teacher\.error_rate: must be in \[0, 1\), got 1\.0$"),
    ({"error_rate": -0.2}, r"^teacher\.error_rate: must be in \[0, 1\), got -0\.2$"),
    ({"coverage": "half"}, r"^teacher\.coverage: expected float, got 'half'$"),
    ({"backend": "import", "source": "x.jsonl", "coverage": 0.5},
     r"^teacher\.coverage: only the oracle backend takes it \(teacher\.backend is 'import'\); set 1\.0$"),
    ({"backend": "openai", "error_rate": 0.1},
     r"^teacher\.error_rate: only the oracle backend takes it \(teacher\.backend is 'openai'\); set 0\.0$"),
])
def test_bad_values_are_one_line_errors_naming_the_key(tmp_path, teacher, message):
    from stages.common import load_params

    with pytest.raises(ParamsError, match=message):
        load_params(params_file(tmp_path, **teacher))


def test_tasks_that_cannot_err_refuse_error_rate_but_take_coverage(tmp_path):
    from stages.common import load_params

    with pytest.raises(ParamsError, match=r"^teacher\.error_rate: task 'coinflip' cannot write wrong rationales "
                                          r"\(modsum can\); set 0\.0$"):
        load_params(params_file(tmp_path, task="coinflip", error_rate=0.3))
    p = load_params(params_file(tmp_path, task="coinflip", coverage=0.5))
    task = get_task(p.task)
    train = task.load()["train"]
    rationales = get_teacher(p.teacher, task).rationales(train)
    assert len(rationales) == round(0.5 * len(train)) and all(r.correct for r in rationales)
    with pytest.raises(SertError, match="cannot write a wrong rationale"):
        task.wrong_rationale(train[0], random.Random(0))


# -- through the stages: metrics, only_correct, and the default's output unchanged --------------

def run_stage(name: str, *args) -> None:
    main = __import__(f"stages.{name}", fromlist=["main"]).main
    main(*args, params=Path("params.yaml"))


def write_params(root: Path, **teacher) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["teacher"].update(teacher)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_default_teacher_output_is_the_committed_pipelines_byte_for_byte(tmp_path, monkeypatch):
    """coverage 1.0 / error_rate 0.0 write exactly the data/teacher.jsonl recorded in dvc.lock (the
    committed default pipeline's, from before these params existed)."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    recorded = {o["path"]: o["md5"] for o in lock["stages"]["teacher"]["outs"]}["data/teacher.jsonl"]
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    run_stage("prepare")
    run_stage("teacher")
    assert hashlib.md5(Path("data/teacher.jsonl").read_bytes()).hexdigest() == recorded
    metrics = json.loads(Path("metrics/teacher.json").read_text())
    assert metrics == {"backend": "oracle", "accuracy": 1.0, "n": 400, "n_correct": 400,
                           "questions": 400, "covered": 400, "wrong": 0, "kept": 400}


@pytest.mark.parametrize("only_correct", [True, False])
def test_stage_metrics_and_only_correct_filter_what_distillation_trains_on(tmp_path, monkeypatch, only_correct):
    from sert.tasks import read_examples
    from sert.variants import distill_texts
    from stages.common import load_params

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, coverage=0.25, error_rate=0.3, seed=5, only_correct=only_correct)
    run_stage("prepare")
    run_stage("teacher")
    metrics = json.loads(Path("metrics/teacher.json").read_text())
    assert {k: metrics[k] for k in ("n", "n_correct", "questions", "covered", "wrong", "kept")} == {
        "n": 100, "n_correct": 70, "questions": 400, "covered": 100, "wrong": 30, "kept": 70 if only_correct else 100}
    rows = [json.loads(line) for line in Path("data/teacher.jsonl").read_text().splitlines()]
    wrong_texts = [r["rationale"] for r in rows if not r["correct"]]
    assert len(wrong_texts) == 30
    p = load_params(Path("params.yaml"))
    texts = distill_texts(read_examples(Path("data/prepared/train.jsonl")), rows, p.prompts, p.teacher.only_correct)
    assert len(texts) == metrics["kept"]
    distilled = " ".join(target for _, target in texts)
    # Wrong rationales are dropped with only_correct and distilled without it.
    assert all((steps_text(t) in distilled) != only_correct for t in wrong_texts)


def steps_text(rationale: str) -> str:
    """The steps of a rationale, as they appear inside a distillation target."""
    return rationale[len(ORACLE_OPENING):]
