from hypothesis import given
from hypothesis import strategies as st

from sert.filtering import FUNNEL_KEYS, FilterConfig, filter_samples, pattern_ok
from sert.sampling import Sample

CHAIN = " First, 7 + 6 = 3. Then 3 + 2 = 5. Then 5 + 9 = 4. So the answer is 4."


def s(id, text, n_tokens=30, ppl=6.0, rep2=0.05):
    return Sample(id=id, branch=0, branch_token=" First", text=text, n_tokens=n_tokens, perplexity=ppl, rep2=rep2)


def test_funnel_counts_each_filter_in_order():
    samples = [
        s("a", " So the answer is 4."),                      # direct answer: pattern
        s("a", CHAIN + "\nQuestion: What is 1 + 1 mod 10?"),  # imitative: pattern
        s("a", CHAIN, n_tokens=10),                          # too short
        s("a", CHAIN, rep2=0.5),                             # repetitive
        s("a", CHAIN, ppl=2.0),                              # too predictable
        s("a", CHAIN, rep2=0.10),                            # kept
        s("b", CHAIN, rep2=0.02),                            # kept, lowest rep-2 for b
        s("b", CHAIN, rep2=0.03),
    ]
    selected, funnel = filter_samples(samples, FilterConfig(min_tokens=25, max_rep2=0.2, min_perplexity=5))
    assert list(funnel) == [k for k in FUNNEL_KEYS if k != "after_answer"]
    assert funnel == {"samples": 8, "after_pattern": 6, "after_length": 5, "after_repetition": 4,
                      "after_perplexity": 3, "selected": 2}
    assert {x.id: x.rep2 for x in selected} == {"a": 0.10, "b": 0.02}


def test_everything_filtered_gives_an_empty_selection():
    selected, funnel = filter_samples([s("a", " So the answer is 1.")], FilterConfig())
    assert selected == [] and funnel["selected"] == 0


def test_option_listing_is_dropped():
    assert not pattern_ok(" Let's see (A) cat (B) dog (C) fish. So the answer is (A).", 3)


@given(st.text())
def test_pattern_never_crashes(text):
    pattern_ok(text, 3)


def test_answer_aware_filter_is_off_by_default_and_drops_wrong_answers():
    from sert.sampling import Sample

    text = " First, 7 + 6 = 3. Then 3 + 2 = 5. So the answer is {}."
    samples = [Sample("q", 0, " First", text.format(d), 30, 9.0, 0.0) for d in ("5", "4")]
    cfg = FilterConfig(min_tokens=1, max_rep2=1.0, min_perplexity=0.0)
    kept, funnel = filter_samples(samples, cfg)
    assert "after_answer" not in funnel and funnel["selected"] == 1
    cfg.require_correct = True
    kept, funnel = filter_samples(samples, cfg, lambda s: s.text.endswith("is 5."))
    assert funnel["after_perplexity"] == 2 and funnel["after_answer"] == 1 and kept[0].text.endswith("is 5.")
    assert list(funnel) == [k for k in FUNNEL_KEYS if k in funnel]
