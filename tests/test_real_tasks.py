"""Dataset and generated tasks: loading, splits, validation on load, answer extraction, and the
import teacher against Fine-tune-CoT's published teacher accuracy. Tests that read
../shared/data skip when it is absent (a user's clone has none)."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT, SHARED
from sert.errors import DataError, ParamsError, SertError
from sert.tasks import TASKS, Example, TaskConfig, get_task
from sert.tasks.base import split_by_file, split_by_seed
from sert.tasks.commonsenseqa import choice_candidates
from sert.tasks.gsm8k import normalize_number
from sert.config import TeacherConfig
from sert.teachers import get_teacher, teacher_metrics

DATA = SHARED / "data"
needs_shared = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} not found (the project's shared data sits beside CI's checkout only)")
STRATEGYQA = DATA / "strategyqa/task.json"
FT_SPLIT = DATA / "finetune-cot/strategy_qa__default.json"
FT_TEACHER = DATA / "finetune-cot/D_strategy_qa.json"


def task(name, **kw):
    return get_task(TaskConfig(name=name, **kw))


@pytest.fixture(scope="module")
def strategyqa_all():
    t = task("strategyqa", source=str(STRATEGYQA))
    return t, t.read_source()


def prepare_with(tmp_path, **task_keys):
    """Run the real `sert prepare` on the committed params.yaml with only ``task_keys`` changed;
    return the prepared {split: [records]}."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["task"].update(task_keys)
    tmp_path.mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "stages.cli", "prepare"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {split: [json.loads(line) for line in (tmp_path / "data/prepared" / f"{split}.jsonl").open()]
            for split in ("train", "test")}


# -- StrategyQA ------------------------------------------------------------------------------------

@needs_shared
def test_switching_the_default_params_to_a_dataset_prepares_its_whole_published_split(tmp_path):
    """The tiny world's sizes are modsum's options: naming a dataset task (and where its files are)
    gives the whole published split, not the first 400 / 200 questions of it."""
    split = json.loads(FT_SPLIT.read_text())
    strategyqa = prepare_with(tmp_path / "sqa", name="strategyqa", source=str(STRATEGYQA), split_file=str(FT_SPLIT))
    assert (len(strategyqa["train"]), len(strategyqa["test"])) == (1603, 687)
    assert [r["id"] for r in strategyqa["train"]] == [str(i) for i in split["train"]]
    assert [r["id"] for r in strategyqa["test"]] == [str(i) for i in split["test"]]
    csqa = prepare_with(tmp_path / "csqa", name="commonsenseqa", source=str(DATA / "commonsenseqa"))
    assert (len(csqa["train"]), len(csqa["test"])) == (9741, 1221)
    # A stated subset (the CPU preset's): the first questions of the published split, in its order.
    subset = prepare_with(tmp_path / "subset", name="strategyqa", source=str(STRATEGYQA), split_file=str(FT_SPLIT),
                          subset_train=200, subset_test=100)
    assert subset == {"train": strategyqa["train"][:200], "test": strategyqa["test"][:100]}


@needs_shared
def test_strategyqa_split_file_and_seeded_split_agree(strategyqa_all):
    t, examples = strategyqa_all
    assert len(examples) == 2290 and {e.answer for e in examples} == {"yes", "no"}
    by_file = split_by_file(examples, str(FT_SPLIT))
    assert (len(by_file["train"]), len(by_file["test"])) == (1603, 687)
    # Fine-tune-CoT's released split is exactly the seeded 70/30 rule with seed 0.
    assert split_by_seed(examples, 0.3, 0) == by_file
    assert split_by_seed(examples, 0.3, 1) != by_file
    loaded = task("strategyqa", source=str(STRATEGYQA), split_file=str(FT_SPLIT)).load()
    assert loaded == by_file
    capped = task("strategyqa", source=str(STRATEGYQA), subset_train=5, subset_test=3).load()
    assert capped["train"] == by_file["train"][:5] and capped["test"] == by_file["test"][:3]


def test_strategyqa_bad_records_name_file_and_record(tmp_path):
    path = tmp_path / "task.json"
    good = {"input": "Is water wet?", "target_scores": {"Yes": 1, "No": 0}, "target": "Yes. It is."}
    path.write_text(json.dumps({"examples": [good, {**good, "target_scores": {"Yes": 0, "No": 0}}]}))
    with pytest.raises(SertError, match=r"task\.json: example 1.*expected one of \['yes', 'no'\]"):
        task("strategyqa", source=str(path)).read_source()
    path.write_text(json.dumps({"examples": [good, {"input": "x"}]}))
    with pytest.raises(DataError, match=r"example 1: missing \"target_scores\""):
        task("strategyqa", source=str(path)).read_source()
    path.write_text('{"examples": [')
    with pytest.raises(DataError, match=r"task\.json:1: not valid JSON"):
        task("strategyqa", source=str(path)).read_source()


def test_split_file_errors(tmp_path):
    examples = [Example(str(i), f"q{i}", "yes") for i in range(4)]
    bad = tmp_path / "split.json"
    for content, message in [({"train": [0, 1], "test": [1]}, "appears twice"), ({"train": [0, 9], "test": [1]}, "outside"),
                             ({"train": [0]}, "expected")]:
        bad.write_text(json.dumps(content))
        with pytest.raises(DataError, match=message):
            split_by_file(examples, str(bad))


@pytest.mark.parametrize("text, expected", [
    ("Yes, it is. So the answer is no.", "no"),        # first candidate after the prefix
    ("It is not. No. But yes, partly", "yes"),         # no prefix: the last candidate
    ("Therefore, the answer is: \"Yes\".", "yes"),
    ("Nobody knows; yesterday.", None),                 # whole words only
    ("", None),
])
def test_strategyqa_extraction(text, expected):
    assert task("strategyqa").extract_answer(text) == expected


# -- CommonsenseQA ---------------------------------------------------------------------------------

@needs_shared
def test_commonsenseqa_loads_original_files():
    splits = task("commonsenseqa", source=str(DATA / "commonsenseqa")).load()
    assert (len(splits["train"]), len(splits["test"])) == (9741, 1221)
    ex = splits["test"][0]
    assert ex.question == ("A revolving door is convenient for two direction travel, but it also serves as a security "
                           "measure at a what? Answer choices: (A) bank, (B) library, (C) department store, (D) mall, "
                           "(E) new york.")
    assert ex.answer == "A" and ex.choices == ["bank", "library", "department store", "mall", "new york"]


def test_commonsenseqa_answer_outside_space_names_file_and_line(tmp_path):
    record = {"answerKey": "A", "id": "x1", "question": {"stem": "Where?", "choices": [
        {"label": label, "text": label.lower()} for label in "ABCDE"]}}
    (tmp_path / "train_rand_split.jsonl").write_text(json.dumps(record) + "\n" + json.dumps({**record, "id": "x2", "answerKey": "F"}) + "\n")
    (tmp_path / "dev_rand_split.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(SertError, match=r"train_rand_split\.jsonl:2: record 'x2' has answer 'F'"):
        task("commonsenseqa", source=str(tmp_path)).load()
    with pytest.raises(DataError, match="directory"):
        task("commonsenseqa", source=str(tmp_path / "missing")).load()
    (tmp_path / "train_rand_split.jsonl").write_text(json.dumps(record) + "\n")
    assert len(task("commonsenseqa", source=str(tmp_path)).load()["train"]) == 1
    with pytest.raises(SertError, match="split_file does not apply"):
        task("commonsenseqa", source=str(tmp_path), split_file="x.json").load()


@pytest.mark.parametrize("text, expected", [
    ("So the answer is (C).", ["C"]),
    ("A person in America would Eat at (B) library", ["B"]),     # no letters from inside words / articles
    ("Therefore, the answer is E", ["E"]),
    ("I think B, not D.", ["B", "D"]),
    ("Every Chair Building", []),
])
def test_commonsenseqa_candidates_skip_capitals_inside_words(text, expected):
    assert choice_candidates(text) == expected


# -- GSM8K and the generated tasks -----------------------------------------------------------------

def test_gsm8k_local_files_and_numbers(tmp_path):
    rows = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "He has 3 + 4 = <<3+4=7>>7.\n#### 7"},
            {"question": "A box costs $1,200. Two boxes?", "answer": "2 * 1200 = <<2*1200=2400>>2400\n#### 2,400"}]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = task("gsm8k", source=str(tmp_path))
    splits = t.load()
    assert [e.answer for e in splits["train"]] == ["7", "2400"]
    assert splits["train"][0].reference == "He has 3 + 4 = 7."
    assert t.extract_answer(t.oracle_rationale(splits["train"][1])) == "2400"
    assert t.extract_answer("So the answer is $2,400.00 dollars, not 3.") == "2400"
    assert normalize_number("72.0") == "72" and normalize_number("abc") is None
    (tmp_path / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(DataError, match=r"test\.jsonl:1: answer has no"):
        t.load()


@pytest.mark.parametrize("name", ["coinflip", "lastletter"])
def test_generated_tasks_are_seeded_and_their_references_are_correct(name):
    config = TaskConfig(name=name, seed=1, options={name: {"n_train": 40, "n_test": 10}})
    t = get_task(config)
    splits = t.load()
    assert splits == get_task(config).load()
    questions = [e.question for s in splits.values() for e in s]
    assert len(set(questions)) == 50
    for ex in splits["train"] + splits["test"]:
        t.validate(ex, "generated")
        assert t.is_correct(t.extract_answer(t.oracle_rationale(ex)), ex), ex


def test_last_letter_and_coinflip_extraction():
    assert task("lastletter").extract_answer('So the answer is "Seyh".') == "seyh"
    assert task("coinflip").extract_answer("It ends tails up, so no.") == "no"


# -- every registered task: extraction is total and whitespace-stable (property tests) -------------

@given(st.text(max_size=300), st.sampled_from(sorted(TASKS)), st.text(alphabet=" \t\n", max_size=5),
       st.text(alphabet=" \t\n", max_size=5))
def test_extraction_never_crashes_and_ignores_surrounding_whitespace(text, name, left, right):
    t = get_task(TaskConfig(name=name))
    answer = t.extract_answer(text)
    assert answer is None or isinstance(answer, str)
    assert t.extract_answer(left + text + right) == answer


@given(st.sampled_from(["yes", "no"]), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_strategyqa_answer_after_prefix_wins(gold, noise):
    t = task("strategyqa")
    assert t.extract_answer(f"{noise} So the answer is {gold}.") == gold


# -- the import teacher ----------------------------------------------------------------------------

@needs_shared
def test_import_teacher_reproduces_finetune_cot_accuracy(strategyqa_all):
    t, examples = strategyqa_all
    teacher = get_teacher(TeacherConfig(backend="import", source=str(FT_TEACHER)), t)
    everything = teacher_metrics(teacher.rationales(examples))
    assert (everything["n"], everything["n_correct"]) == (2290, 1224)   # the published 53.45%
    assert round(100 * everything["accuracy"], 2) == 53.45
    train = split_by_file(examples, str(FT_SPLIT))["train"]
    on_train = teacher_metrics(teacher.rationales(train))
    assert (on_train["n"], on_train["n_correct"]) == (1603, 856)
    assert teacher.extra_metrics()["questions_without_rationale"] == 0


def test_import_teacher_jsonl_matches_by_id_then_question(tmp_path):
    t = task("strategyqa")
    examples = [Example("0", "Is the sky blue?", "yes"), Example("1", "Is  fire cold?", "no"), Example("2", "Unseen?", "no")]
    path = tmp_path / "teacher.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "0", "rationale": "The sky scatters blue light.", "answer": "Yes"},
        {"question": "Is fire cold?", "rationale": "Fire is hot. So the answer is yes."},   # no answer field: extracted
        {"id": "1", "question": "Something else entirely?", "rationale": "ignored: id matches, question does not"},
    ]) + "\n")
    teacher = get_teacher(TeacherConfig(backend="import", source=str(path)), t)
    got = {r.id: (r.answer, r.correct) for r in teacher.rationales(examples)}
    assert got == {"0": ("yes", True), "1": ("yes", False)}
    assert teacher.extra_metrics() == {"questions": 3, "questions_without_rationale": 1, "matched_by_question_text": 1}
    with pytest.raises(ParamsError, match="teacher.source"):
        get_teacher(TeacherConfig(backend="import"), t).rationales(examples)
    path.write_text(json.dumps({"id": "9", "rationale": "r"}) + "\n")
    with pytest.raises(DataError, match="no completion matches"):
        get_teacher(TeacherConfig(backend="import", source=str(path)), t).rationales(examples)
