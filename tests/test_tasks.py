import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sert.errors import SertError, TaskError
from sert.tasks import Example, TaskConfig, get_task
from sert.tasks.modsum import worked_solution


def modsum_config(n_train, n_test, **kw):
    return TaskConfig(options={"modsum": {"n_train": n_train, "n_test": n_test}}, **kw)


@pytest.fixture(scope="module")
def modsum():
    return get_task(modsum_config(50, 20, seed=3))


def test_load_sizes_disjoint_and_gold_answers(modsum):
    splits = modsum.load()
    assert len(splits["train"]) == 50 and len(splits["test"]) == 20
    train_q = {e.question for e in splits["train"]}
    assert not train_q & {e.question for e in splits["test"]}
    for ex in splits["train"]:
        assert ex.answer == str(sum(modsum.terms_of(ex)) % 10)


def test_load_is_seeded(modsum):
    assert modsum.load() == get_task(modsum_config(50, 20, seed=3)).load()
    assert modsum.load() != get_task(modsum_config(50, 20, seed=4)).load()


def test_subset_keeps_the_first_questions_of_each_split(modsum):
    whole = modsum.load()
    cut = get_task(modsum_config(50, 20, seed=3, subset_train=7, subset_test=3)).load()
    assert cut == {"train": whole["train"][:7], "test": whole["test"][:3]}
    with pytest.raises(TaskError, match=r"task\.subset_test: 21 asked for, but the test split holds 20"):
        get_task(modsum_config(50, 20, seed=3, subset_test=21)).load()


@pytest.mark.parametrize("text, expected", [
    (" First, 7 + 6 = 3. Then 3 + 2 = 5. So the answer is 5.", "5"),
    (" So the answer is 8.", "8"),
    (" 7 + 6 = 3", "3"),  # no answer prefix: the last candidate
    (" So the answer is 12 or 4.", "12"),  # first candidate after the prefix
    (" nothing numeric", None),
])
def test_extract_answer(modsum, text, expected):
    assert modsum.extract_answer(text) == expected


def test_validate_rejects_answers_outside_the_space(modsum):
    with pytest.raises(TaskError, match="record 'x'.*answer '42'"):
        modsum.validate(Example("x", "What is 1 + 2 mod 10?", "42"), "file.jsonl")


def test_unknown_task_and_options():
    with pytest.raises(TaskError, match="unknown task 'nope'.*modsum"):
        get_task(TaskConfig(name="nope"))
    with pytest.raises(SertError, match=r"task\.options\.modsum\.n_terms: must be in \[2, 8\], got 20"):
        get_task(TaskConfig(options={"modsum": {"n_terms": 20}}))
    with pytest.raises(SertError, match=r"task\.options\.modsum\.terms: unknown key; allowed: n_train, n_test, n_terms"):
        get_task(TaskConfig(options={"modsum": {"terms": 3}}))
    with pytest.raises(SertError, match=r"task\.options\.modsum\.n_train: expected int, got 'many'"):
        get_task(TaskConfig(options={"modsum": {"n_train": "many"}}))
    with pytest.raises(SertError, match=r"task\.options\.modsum\.n_test: must be at least 1, got 0"):
        get_task(TaskConfig(options={"modsum": {"n_test": 0}}))
    with pytest.raises(TaskError, match=r"task\.options\.modsum: modsum with 2 terms has only 100 distinct"):
        get_task(TaskConfig(options={"modsum": {"n_terms": 2}}))
    # Options are keyed by task name: flat options (the old layout) name no task.
    with pytest.raises(TaskError, match=r"task\.options\.n_terms: not a registered task"):
        get_task(TaskConfig(options={"n_terms": 4}))
    with pytest.raises(TaskError, match=r"task\.options\.strategyqa: task 'strategyqa' takes no options"):
        get_task(TaskConfig(name="strategyqa", options={"strategyqa": {"n_train": 5}}))


def test_switching_task_leaves_the_other_tasks_options_alone():
    """The default params carry modsum's options; another task neither reads nor trips over them,
    but a typo in them is still caught, whichever task runs."""
    options = {"modsum": {"n_train": 400, "n_test": 200, "n_terms": 4}}
    coinflip = get_task(TaskConfig(name="coinflip", options=options))
    assert coinflip.options.n_items == 4 and {len(s) for s in coinflip.load().values()} == {350, 150}
    assert get_task(TaskConfig(name="strategyqa", options=options)).options == get_task(TaskConfig(name="strategyqa")).options
    with pytest.raises(SertError, match=r"task\.options\.modsum\.n_term: unknown key"):
        get_task(TaskConfig(name="coinflip", options={"modsum": {"n_term": 4}}))


def test_oracle_rationale_reaches_the_gold_answer(modsum):
    for ex in modsum.load()["train"]:
        assert modsum.extract_answer(modsum.oracle_rationale(ex)) == ex.answer


def test_worked_solution_chains_running_totals():
    assert worked_solution((7, 6, 2, 9)) == "First, 7 + 6 = 3. Then 3 + 2 = 5. Then 5 + 9 = 4."


def test_corpus_mixture_and_held_out_questions(modsum):
    held_out = {e.question for s in modsum.load().values() for e in s}
    docs = modsum.pretraining_corpus(random.Random(0), 4000, 0.3, 0.5, held_out)
    questions = [d for d in docs if d[0][0].startswith("Question:")]
    worked = [d for d in questions if "First," in d[1][0]]
    assert 0.4 < len(questions) / len(docs) < 0.6
    assert 0.25 < len(worked) / len(questions) < 0.35
    assert not any(d[0][0].split("\n")[0].removeprefix("Question: ") in held_out for d in questions)
    # Only the continuation is trained; the random question is context.
    assert all(not d[0][1] and d[1][1] for d in questions)


def test_tiny_tokenizer_spells_the_teachers_words_whole_and_the_corpus_as_before(modsum):
    """The teacher's words (the step-by-step opener, the oracle's opening) are one token each;
    every corpus document splits into the same token strings as with a corpus-only tokenizer."""
    from sert.config import STEP_BY_STEP, PromptConfig, TinyConfig
    from sert.formats import distill_text
    from sert.modeling import tiny_tokenizer, train_tokenizer
    from sert.tasks.modsum import ORACLE_OPENING

    docs = modsum.pretraining_corpus(random.Random(0), 3000, 0.3, 0.5, set())
    vocab_size = TinyConfig().vocab_size
    tiny = tiny_tokenizer(modsum, docs, vocab_size)
    corpus_only = train_tokenizer(["".join(t for t, _ in d) for d in docs], vocab_size)
    assert len(tiny) < vocab_size  # the cap is not what stopped the merges
    example = modsum.load()["train"][0]
    prompt, target = distill_text(example, modsum.oracle_rationale(example), PromptConfig())
    for phrase in (STEP_BY_STEP, " " + ORACLE_OPENING.strip()):
        assert phrase in target
        pieces = tiny.convert_ids_to_tokens(tiny(phrase)["input_ids"])
        words = phrase.replace("'s", " 's").replace(".", " .").split()
        assert len(pieces) == len(words), pieces
    assert len(tiny(target)["input_ids"]) < 0.6 * len(corpus_only(target)["input_ids"])
    for doc in docs[:500]:
        text = "".join(t for t, _ in doc)
        assert tiny.convert_ids_to_tokens(tiny(text)["input_ids"]) == \
            corpus_only.convert_ids_to_tokens(corpus_only(text)["input_ids"])


@given(st.text(), st.text(alphabet=" \n\t", max_size=5), st.text(alphabet=" \n\t", max_size=5))
def test_extraction_total_and_whitespace_stable(text, left, right):
    task = get_task(TaskConfig())
    assert task.extract_answer(left + text + right) == task.extract_answer(text)


def test_every_stage_validates_task_options_before_work(tmp_path):
    """load_params (run by every stage first) checks task.name and every task.options entry."""
    from stages.common import load_params

    path = tmp_path / "params.yaml"
    path.write_text("task:\n  options:\n    modsum:\n      n_term: 4\n")
    with pytest.raises(SertError, match=r"^task\.options\.modsum\.n_term: unknown key; allowed: n_train, n_test, n_terms$"):
        load_params(path)
    path.write_text("task:\n  name: strategyqa\n  options:\n    lastleter: {n_items: 3}\n")
    with pytest.raises(SertError, match=r"^task\.options\.lastleter: not a registered task"):
        load_params(path)
