"""Intervals and tests (sert/stats.py) against published reference values, their degenerate cases,
and the intervals in the evaluation metrics (sert/evaluation.py), also on the real teacher row."""

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SHARED
from hypothesis import given, settings
from hypothesis import strategies as st

from sert.config import EvalConfig
from sert.evaluation import score
from sert.stats import bootstrap_mean, compare_paired, excludes_zero, mcnemar_exact, newcombe_difference, wilson
from sert.tasks import Example, TaskConfig, get_task


@pytest.fixture(autouse=True)
def no_warnings():
    """Every case here, degenerate ones included, runs without a warning (BCa's NaN would warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_wilson_matches_reference_values():
    # 5/10: 0.2366 to 0.7634 (Wilson score interval without continuity correction, as R's
    # binom::binom.wilson(5, 10) and prop.test(5, 10, correct = FALSE) print it).
    assert wilson(5, 10) == pytest.approx((0.2365931, 0.7634069), abs=1e-7)
    # The closed form, z = 1.959964: centre (p + z^2/2n) / (1 + z^2/n),
    # half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    z, k, n = 1.959963985, 385, 687
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    assert wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0 and wilson(0, 0) is None


def test_mcnemar_exact_p_from_the_binomial_distribution():
    # 2 vs 10 discordant pairs: two-sided exact p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096.
    assert mcnemar_exact(2, 10) == pytest.approx(158 / 4096, rel=1e-12)
    assert mcnemar_exact(10, 2) == mcnemar_exact(2, 10)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0  # no discordant pair: nothing to test


@pytest.mark.parametrize("k1, n1, k2, n2, expected", [
    (56, 70, 48, 80, (0.0524, 0.3339)), (9, 10, 3, 10, (0.1705, 0.8090)),
    (6, 7, 2, 7, (0.0582, 0.8062)), (5, 56, 0, 29, (-0.0381, 0.1926))])
def test_newcombe_matches_the_papers_examples(k1, n1, k2, n2, expected):
    """Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)."""
    assert newcombe_difference(k1, n1, k2, n2) == pytest.approx(expected, abs=5e-5)


def test_paper_sert_rd_vs_rd_on_strategyqa_gpt2_is_within_noise():
    # Table II, GPT-2 on StrategyQA: SERT+RD 54.65 vs RD 52.69 on 687 questions each.
    low, high = newcombe_difference(round(0.5465 * 687), 687, round(0.5269 * 687), 687)
    assert low < 0 < high and high - low > 0.10  # about +-5 points around a 2-point difference


def test_bootstrap_mean_degenerate_cases():
    assert bootstrap_mean([]) is None and bootstrap_mean([3.0]) is None  # one value says nothing of its spread
    assert bootstrap_mean([1.0] * 50) == (1.0, 1.0) and bootstrap_mean([0, 0]) == (0.0, 0.0)
    low, high = bootstrap_mean([0.0, 1.0])
    assert (low, high) == (0.0, 1.0)


def test_bootstrap_mean_is_reproducible_and_close_to_the_normal_interval():
    values = np.random.default_rng(7).exponential(40.0, size=687)
    np.random.seed(123)  # the global generator plays no part
    first = bootstrap_mean(values)
    np.random.random(10)
    assert bootstrap_mean(values) == first
    low, high = first
    mean, se = values.mean(), values.std(ddof=1) / math.sqrt(len(values))
    assert low < mean < high
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_compare_paired_counts_difference_interval_and_p():
    a = [1] * 30 + [0] * 10 + [1] * 5 + [0] * 55   # right on 35
    b = [1] * 30 + [1] * 10 + [0] * 5 + [0] * 55   # right on 40
    c = compare_paired(a, b)
    assert (c.n, c.a_only, c.b_only) == (100, 5, 10)
    assert c.difference == pytest.approx(-0.05) and c.p_value == mcnemar_exact(5, 10)
    assert c.ci[0] < -0.05 < c.ci[1] and excludes_zero(c.ci) is False
    assert compare_paired(a, b) == c  # the same interval every time
    same = compare_paired(a, a)
    assert (same.difference, same.ci, same.p_value) == (0.0, (0.0, 0.0), 1.0)
    shifted = compare_paired([1] * 20, [0] * 20)
    assert shifted.ci == (1.0, 1.0) and shifted.p_value == pytest.approx(2 / 2**20)
    assert compare_paired([1], [0]).ci is None
    with pytest.raises(ValueError, match="different lengths"):
        compare_paired([1, 0], [1])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_rate(kn):
    k, n = kn
    ci = wilson(k, n)
    if n == 0:
        assert ci is None
    else:
        assert 0.0 <= ci[0] <= k / n <= ci[1] <= 1.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=2, max_size=60))
def test_bootstrap_interval_lies_within_the_data_and_holds_the_mean(values):
    low, high = bootstrap_mean(values)
    mean = float(np.mean(values))
    assert min(values) - 1e-9 <= low <= mean + 1e-9 and mean - 1e-9 <= high <= max(values) + 1e-9


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=80))
def test_paired_difference_is_the_difference_of_rates(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    c = compare_paired(a, b)
    assert c.difference == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert -1 <= c.ci[0] <= c.difference + 1e-9 and c.difference - 1e-9 <= c.ci[1] <= 1
    assert c.a_only + c.b_only == sum(x != y for x, y in pairs)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.data())
def test_newcombe_contains_the_difference(n1, n2, data):
    k1, k2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    low, high = newcombe_difference(k1, n1, k2, n2)
    assert -1 <= low <= k1 / n1 - k2 / n2 <= high <= 1


# -- the intervals in metrics/eval/<variant>.json -------------------------------------------------
CI_KEYS = ("accuracy_ci", "format_rate_ci", "length_ci", "repetition_ci", "reasoning_rate_ci")


def modsum():
    return get_task(TaskConfig(options={"modsum": {"n_train": 4, "n_test": 4}}))


def outputs(texts):
    return [SimpleNamespace(text=t, token_ids=None) for t in texts]


def test_score_writes_an_interval_beside_each_compared_metric():
    task = modsum()
    examples = [Example(str(i), f"What is {i} + 1 mod 10?", str((i + 1) % 10)) for i in range(6)]
    texts = [f"{i} plus 1 is {(i + 1) % 10}. So the answer is {(i + 1) % 10}." for i in range(3)] + \
            ["7", "no idea at all here", "So the answer is 3."]
    _, m = score(task, examples, outputs(texts), EvalConfig())
    keys = list(m)
    for key in CI_KEYS:  # beside its metric, as [low, high] rounded like the metrics
        metric = key.removesuffix("_ci")
        assert keys.index(key) == keys.index(metric) + 1
        low, high = m[key]
        assert low <= m[metric] <= high and all(round(x, 6) == x for x in (low, high))
    assert m["accuracy_ci"] == [round(x, 6) for x in wilson(m["n_correct"], 6)]
    assert m["length_ci"][0] < m["length"] < m["length_ci"][1]
    _, again = score(task, examples, outputs(texts), EvalConfig())
    assert again == m  # byte for byte the same metrics


def test_score_degenerate_intervals():
    task = modsum()
    one = [Example("0", "What is 1 + 1 mod 10?", "2")]
    _, m = score(task, one, outputs(["So the answer is 2."]), EvalConfig())
    assert m["accuracy_ci"] == [round(x, 6) for x in wilson(1, 1)]  # Wilson is defined for one question
    assert m["length_ci"] is None and m["repetition_ci"] is None  # a bootstrap is not
    same = [Example(str(i), f"What is {i} + 1 mod 10?", str((i + 1) % 10)) for i in range(5)]
    _, m = score(task, same, outputs(["5"] * 5), EvalConfig())  # one-word answers: constant Len and Rep
    assert m["length_ci"] == [1.0, 1.0] and m["repetition_ci"] == [0.0, 0.0]
    assert score(task, [], [], EvalConfig())[1] == {"n": 0}


COMPLETIONS = SHARED / "data/finetune-cot/D_strategy_qa.json"
STRATEGYQA = SHARED / "data/strategyqa/task.json"


@pytest.mark.skipif(not (COMPLETIONS.is_file() and STRATEGYQA.is_file()),
                    reason=f"needs {COMPLETIONS} and {STRATEGYQA} (the shared data folder)")
def test_real_teacher_row_has_intervals():
    """text-davinci-002's released completions for the 687 StrategyQA test questions, scored by the
    teacher stage's row: the intervals hold Table II's Len 76.77 and Rep 0.36, Fmt has none."""
    from sert.config import TeacherConfig
    from sert.teachers import get_teacher, teacher_row

    task = get_task(TaskConfig(name="strategyqa", source=str(SHARED / "data/strategyqa/task.json"),
                               split_file=str(SHARED / "data/finetune-cot/strategy_qa__default.json")))
    test = task.load()["test"]
    teacher = get_teacher(TeacherConfig(backend="import", source=str(COMPLETIONS)), task)
    row = teacher_row(teacher, task, test, EvalConfig())
    assert row["n"] == 687 and row["format_rate"] is None and row["format_rate_ci"] is None
    assert row["length_ci"][0] < 76.77 < row["length_ci"][1] and row["length_ci"][1] - row["length_ci"][0] < 5
    assert row["repetition_ci"][0] < 0.36 < row["repetition_ci"][1]
    assert row["accuracy_ci"] == [round(x, 6) for x in wilson(row["n_correct"], 687)]
