from hypothesis import given
from hypothesis import strategies as st

import pytest

from sert.errors import ParamsError
from sert.config import FilterConfig
from sert.filtering import FUNNEL_KEYS, PATTERN_KEYS, filter_samples, measure, verdict
from sert.samplers import Sample
from sert.text import has_reasoning, words

# 32 whitespace words before the answer clause.
CHAIN = (" First, we add 7 and 6 and keep the last digit, which gives 3. Then we add 2 to 3, which gives 5."
         " Then we add 9 to 5 and keep 4. So the answer is 4.")
FUNNEL_ORDER = [k for k in FUNNEL_KEYS if k != "after_answer"] + list(PATTERN_KEYS) + ["eos_branch_samples", "eos_branch_passed"]


def s(id, text, n_tokens=30, ppl=6.0, rep2=0.05, kept_ppl="same"):
    return Sample(id=id, branch=0, branch_token=" First", text=text, n_tokens=n_tokens, perplexity=ppl, rep2=rep2,
                  kept_perplexity=ppl if kept_ppl == "same" else kept_ppl)


def test_chain_is_long_enough():
    assert len(words(CHAIN.split("So the")[0])) == 32


def test_funnel_counts_each_filter_in_order():
    repetitive = " " + "we add 7 and 6, " * 8 + "So the answer is 4."
    samples = [
        s("a", " So the answer is 4."),                      # direct answer: pattern
        s("a", CHAIN + "\nQuestion: What is 1 + 1 mod 10?"),  # imitative: pattern
        s("a", " First, 7 + 6 = 3. Then 3 + 2 = 5. So the answer is 5."),  # 12 words: too short
        s("a", repetitive),                                  # word rep-2 above 0.2
        s("a", CHAIN, ppl=2.0),                              # too predictable
        s("a", CHAIN.replace("First", "Firstly")),           # kept
        s("b", CHAIN.replace(" Then we add 9", " Then we add 4 and then we add 9")),   # kept, higher rep-2
        s("b", CHAIN),                                       # kept, lowest rep-2 for b
    ]
    selected, funnel = filter_samples(samples, FilterConfig(min_length=25, max_rep2=0.2, min_perplexity=5))
    assert list(funnel) == FUNNEL_ORDER
    assert funnel == {"samples": 8, "after_pattern": 6, "after_length": 5, "after_repetition": 4,
                      "after_perplexity": 3, "selected": 2, "pattern_imitative": 1, "pattern_option_listing": 0,
                      "pattern_direct_response": 1, "eos_branch_samples": 0, "eos_branch_passed": 0}
    assert [x.text for x in selected] == [samples[5].text, samples[7].text]
    assert [verdict(x, FilterConfig(min_length=25, max_rep2=0.2, min_perplexity=5)) for x in samples] == [
        "pattern:direct_response", "pattern:imitative", "length", "repetition", "perplexity", "pass", "pass", "pass"]


def test_length_and_rep2_are_measured_on_what_is_trained():
    # 32 model tokens in all, but only 5 words before "the answer is": training keeps those 5.
    short = s("a", " It sinks in water. The answer is yes, because a pear is denser than water, and so on.",
              n_tokens=32, rep2=0.0)
    assert measure(short, "words") == (4, 0.0)
    assert measure(short, "model") == (32, 0.0)
    assert filter_samples([short], FilterConfig(min_length=25))[1]["after_length"] == 0
    assert filter_samples([short], FilterConfig(min_length=25, unit="model"))[1]["after_length"] == 1
    # Repetition after the answer clause is not trained, so it does not count in words.
    looped = s("a", CHAIN + " the answer is 4" * 20, rep2=0.9)
    assert measure(looped, "words")[1] < 0.2
    assert filter_samples([looped], FilterConfig(min_perplexity=0))[1]["selected"] == 1


def test_rep2_is_in_words_not_the_samples_token_rep2():
    sample = s("a", CHAIN, rep2=0.9)  # the sampler's token rep-2 says repetitive; the words do not
    assert filter_samples([sample], FilterConfig(min_perplexity=0))[1]["selected"] == 1
    assert filter_samples([sample], FilterConfig(min_perplexity=0, unit="model"))[1]["selected"] == 0


def test_unknown_unit_is_a_params_error():
    from sert.config import parse_section

    with pytest.raises(ParamsError, match=r"^filter\.unit: expected 'words' or 'model', got 'letters'$"):
        parse_section(FilterConfig, {"unit": "letters"}, "filter")
    with pytest.raises(ParamsError, match="filter.unit"):  # measure() takes a bare unit name: it checks too
        measure(s("a", CHAIN), "letters")


def test_empty_sample_with_null_perplexity_is_dropped_without_error():
    empty = s("a", "", n_tokens=0, ppl=None, rep2=0.0)
    _, funnel = filter_samples([empty, s("a", CHAIN)], FilterConfig(min_length=0, max_rep2=1, min_perplexity=0))
    assert funnel["after_repetition"] == 1 and funnel["selected"] == 1  # "" already fails the pattern filter
    _, funnel = filter_samples([s("a", CHAIN, ppl=None)], FilterConfig(min_length=0, min_perplexity=0))
    assert funnel["after_repetition"] == 1 and funnel["after_perplexity"] == 0


def test_everything_filtered_gives_an_empty_selection():
    selected, funnel = filter_samples([s("a", " So the answer is 1.")], FilterConfig())
    assert selected == [] and funnel["selected"] == 0


def test_a_path_without_an_answer_clause_is_kept():
    text = CHAIN.split(" So the answer")[0]
    assert has_reasoning(text, 3)
    assert filter_samples([s("a", text)], FilterConfig())[1]["selected"] == 1


def test_option_listing_is_dropped():
    assert not has_reasoning(" Let's see (A) cat (B) dog (C) fish. So the answer is (A).", 3)


@given(st.text())
def test_pattern_never_crashes(text):
    has_reasoning(text, 3)


@given(st.lists(st.tuples(st.text(max_size=80), st.integers(0, 60), st.one_of(st.none(), st.floats(1, 50)),
                          st.floats(0, 1)), max_size=12))
def test_funnel_is_monotone_and_pattern_drops_add_up(rows):
    samples = [s(str(i % 3), t, n, p, r) for i, (t, n, p, r) in enumerate(rows)]
    selected, funnel = filter_samples(samples, FilterConfig(min_length=3, max_rep2=0.3, min_perplexity=2))
    counts = [funnel[k] for k in FUNNEL_KEYS if k in funnel]
    assert counts[:-1] == sorted(counts[:-1], reverse=True) and funnel["selected"] <= funnel["after_perplexity"]
    assert funnel["samples"] - funnel["after_pattern"] == sum(funnel[k] for k in PATTERN_KEYS)
    assert len({x.id for x in selected}) == len(selected)
    cfg = FilterConfig(min_length=3, max_rep2=0.3, min_perplexity=2)
    assert funnel["after_perplexity"] == sum(verdict(x, cfg) == "pass" for x in samples)
    assert funnel["after_length"] - funnel["after_repetition"] == sum(verdict(x, cfg) == "repetition" for x in samples)


def test_answer_aware_filter_is_off_by_default_and_drops_wrong_answers():
    text = " First, 7 + 6 = 3. Then 3 + 2 = 5. So the answer is {}."
    samples = [Sample("q", 0, " First", text.format(d), 30, 9.0, 0.0, kept_perplexity=9.0) for d in ("5", "4")]
    cfg = FilterConfig(min_length=1, max_rep2=1.0, min_perplexity=0.0)
    kept, funnel = filter_samples(samples, cfg)
    assert "after_answer" not in funnel and funnel["selected"] == 1
    cfg.require_correct = True
    kept, funnel = filter_samples(samples, cfg, lambda s: s.text.endswith("is 5."))
    assert funnel["after_perplexity"] == 2 and funnel["after_answer"] == 1 and kept[0].text.endswith("is 5.")
    assert [k for k in funnel if k in FUNNEL_KEYS] == [k for k in FUNNEL_KEYS if k in funnel]


def test_filter_examples_show_what_each_step_removed_and_kept():
    from sert.filtering import STEPS, filter_examples, render_filter_examples

    long = " ".join(f"word{i}" for i in range(30))
    samples = [
        s("q1", "\nQuestion: again? Answer: no"),                     # pattern (imitative)
        s("q2", "Apples grow on trees in orchards."),                 # length
        s("q3", " ".join(["a b"] * 20)),                              # repetition
        s("q4", long, ppl=2.0),                                       # perplexity
        s("q5", long + " more"),                                      # pass
        s("q6", long + " again"),                                     # pass
    ]
    cfg = FilterConfig()
    examples = filter_examples(samples, cfg, per_step=10)
    assert list(examples) == list(STEPS)
    removed = {step: [x.id for x, _ in g["removed"]] for step, g in examples.items()}
    kept = {step: [x.id for x, _ in g["kept"]] for step, g in examples.items()}
    assert removed == {"pattern": ["q1"], "length": ["q2"], "repetition": ["q3"], "perplexity": ["q4"]}
    assert kept["pattern"] == ["q2", "q3", "q4", "q5", "q6"] and kept["perplexity"] == ["q5", "q6"]
    # the verdicts agree with the funnel the same samples give
    _, funnel = filter_samples(samples, cfg)
    assert funnel["after_pattern"] == len(kept["pattern"]) and funnel["after_perplexity"] == len(kept["perplexity"])
    md = render_filter_examples(examples, cfg, {"q1": "Is it?"})
    assert "## pattern: removed (1 shown)" in md and "verdict `pattern:imitative`" in md and "\u23ce" in md


def test_filter_examples_spread_over_questions_and_cap_at_n():
    from sert.filtering import filter_examples

    long = " ".join(f"w{i}" for i in range(30))
    samples = [s(f"q{i // 5}", f"{long} {i}") for i in range(100)]  # 20 questions x 5, all pass
    kept = filter_examples(samples, FilterConfig(), per_step=10)["perplexity"]["kept"]
    ids = [x.id for x, _ in kept]
    assert len(ids) == 10 and len(set(ids)) == 10


def test_end_token_branches_are_counted_in_the_funnel():
    long = " ".join(f"w{i}" for i in range(30))
    samples = [Sample(id="q", branch=4, branch_token="<|endoftext|>", text=t, n_tokens=30, perplexity=6.0, rep2=0.0,
                      eos_branch=True, kept_perplexity=6.0 if t else None) for t in (long, "")] + [s("q", long + " x")]
    _, funnel = filter_samples(samples, FilterConfig())
    assert funnel["eos_branch_samples"] == 2 and funnel["eos_branch_passed"] == 1


def test_perplexity_is_measured_on_the_kept_reasoning_unless_unit_is_model():
    # The reasoning is predictable (2.0) but the whole sample, with its answer clause, is not (6.0):
    # what is trained is the reasoning, so the words rule drops it; the old whole-sample rule keeps it.
    sample = s("a", CHAIN, ppl=6.0, kept_ppl=2.0)
    assert verdict(sample, FilterConfig(min_perplexity=5)) == "perplexity"
    assert verdict(sample, FilterConfig(min_perplexity=5, min_length=10, max_rep2=1.0, unit="model")) == "pass"
    # Nothing kept (the sample opens with its answer clause): no perplexity, dropped even at threshold 0.
    assert verdict(s("a", CHAIN, kept_ppl=None), FilterConfig(min_length=0, max_rep2=1, min_perplexity=0)) == "perplexity"
