"""sert.text: units (words), answer clauses, and the pattern filter's three rules, on synthetic
and on real SmolLM2-135M-Instruct outputs (REAL below: sampled on StrategyQA train questions with
HF ``generate(do_sample=True, top_k=10, top_p=0.95, max_new_tokens=64)``, prompt
``Question: {q}\\nAnswer:``)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sert.text import (count_sentences, has_reasoning, is_direct_response, is_imitative, kept_reasoning,
                       lists_options, pattern_failure, rep_n, split_answer_clause, words)

# (SmolLM2 output, what the pattern filter says: None = a reasoning path it keeps)
REAL = [
    (" No, the answer is: No", "direct_response"),
    ("", "direct_response"),                                            # <|im_end|> first: empty
    ("\nThe answer is: A.", "direct_response"),
    (" No.\n\nThe answer is: A.\n\nThe reason for this answer lies in the context of calculus.", "direct_response"),
    (" No, a llama birth could occur only twice in Vietnam in 1945-46.", "direct_response"),
    (" No, a llama birth could only occur twice during World War II (1945-46), when a single birth occurred "
     "on May 16, 1945.", "direct_response"),
    (" Yes, they do.\n\nThe answer is: Yes, they do.", "direct_response"),
    ("\nNo, Reiki cannot be stored in a bottle.", "direct_response"),
    ("\n1. Yes.\n\nThe answer is a definitive no. The question is asking for a definitive no.", "direct_response"),
    (" (A: no)", "direct_response"),
    (" (no) A single, isolated, non-existent silverfish was able to reach the top of the Empire State Building, "
     "which is approximately 521,102,760 square fe", "direct_response"),
    (" no.\n\nThis answer is incorrect since \"no\" is a grammatical adverb meaning there is no such thing as an "
     "empty sentence and no words on the other side o", "direct_response"),
    ("\nA: In traditional jjju, there are four legs.\nB: No, there are two legs required for jujutsu.\n"
     "C: No, there are three legs required for jujutsu.\nD: Yes, there are two legs required for jujutsu.\nE",
     "imitative"),
    ("\n\nA: Yes, Linus Torvalds is an active, active, active...\nA: No, he is not\nA: No, he is not\n", "imitative"),
    (" No, a silverfish would not reach the top of the Empire State Building, it's a myth. A silverfish is not "
     "an insect that can actually fly.\nA: 30\nThe an", "imitative"),
    (" A llama cannot actually exist in the context of World War II. World War II was actually a global conflict "
     "that spanned the Second World War and the Cold War, not a single military event.", None),
    ("\n\nNo, that's not correct. Aloe vera is not a material from petroleum. Aloe is a plant that belongs to "
     "the Aloe spp., not a petroleum-derived product. ", None),
    (" Yes. Aloe vera contains a high amount of theobromine, a stimulant that can be used as a medical "
     "ingredient. It is also used as a dietary supplement. ", None),
    (" No, all limbs are not all necessary.\n\nIn Japanese, it has been suggested that this is a classic "
     "syllogism:\nIf A, then B\nX (not A) implies D\n", None),
    (" A majority of Reddit users would likely agree that the Pledge of Allegiance is important and has been "
     "adopted as a legal document. However, the Pledg", None),
]


def test_words_are_whitespace_words_with_case_and_punctuation():
    assert words(" The atomic number of hydrogen is 1.\nTherefore, the answer is no.") == [
        "The", "atomic", "number", "of", "hydrogen", "is", "1.", "Therefore,", "the", "answer", "is", "no."]
    assert rep_n(words("No no No."), 1) == 0.0  # case and punctuation kept: three distinct words


def test_rep2_counts_repeated_bigrams():
    assert rep_n([1, 2, 1, 2, 1, 2], 2) == 1 - 2 / 5
    assert rep_n([1, 2, 3, 4], 2) == 0.0
    assert rep_n([1], 2) == 0.0
    assert rep_n([], 2) == 0.0


def test_unigram_repetition():
    assert rep_n(list("aab"), 1) == 1 - 2 / 3


def test_split_answer_clause_takes_first_prefix():
    reasoning, after = split_answer_clause("First, 1 + 2 = 3. So the answer is 3. The answer is 4.")
    assert reasoning == "First, 1 + 2 = 3. "
    assert after.strip().startswith("3.")
    assert split_answer_clause("no clause here") == ("no clause here", None)
    assert split_answer_clause("Therefore, the answer is (B)")[1] == " (B)"


def test_kept_reasoning_is_the_text_before_the_answer_clause():
    assert kept_reasoning("  First, a.\n Then b.  Therefore, the answer is 5. More.") == "First, a. Then b."
    assert kept_reasoning(" A pear floats.\nIt is light.") == "A pear floats. It is light."


@pytest.mark.parametrize("text, expected", REAL)
def test_pattern_filter_on_real_smollm2_outputs(text, expected):
    assert pattern_failure(text, 3) == expected


def test_reasoning_needs_no_answer_clause():
    # The paper keeps coherent paths that never conclude: the gold answer is appended in training.
    assert has_reasoning(" First, 7 + 6 = 3. Then 3 + 1 = 4.", 3)
    assert has_reasoning(" First, 7 + 6 = 3. So the answer is 3.", 3)
    assert not has_reasoning(" So the answer is 3.", 3)


def test_direct_response_rules():
    assert is_direct_response("Yes.", 3) and is_direct_response(" (B)", 3) and is_direct_response(" B) cat", 3)
    assert is_direct_response(" No, it cannot sink.", 3)            # bare answer + one restating clause
    assert not is_direct_response(" No, it cannot sink. Pears are less dense than water.", 3)
    assert not is_direct_response(" Pears are less dense than water, so they float.", 3)  # no bare answer
    assert is_direct_response(" It floats.", 3)                      # under min_words
    assert not is_direct_response(" It floats.", 2)
    assert not is_direct_response(" Nobody knows. It depends on the pear.", 3)  # "No" inside a word is no answer
    assert not is_direct_response(" A pear floats. It is light.", 3)            # "A" the article, not option A


def test_sentences():
    assert count_sentences("It is 1.5 m tall. It floats!\nYes") == 3
    assert count_sentences("  ") == 0


def test_imitation_and_option_listing():
    assert is_imitative(" 3.\n\nQuestion: What is 1 + 2 mod 10?")
    assert is_imitative("blah\nAnswer: 4")
    assert not is_imitative(" First, 7 + 6 = 3. So the answer is 3.")
    assert lists_options("(A) cat (B) dog (C) fish")
    assert lists_options(" I do not know.\nA). Yes\nB). No\nC). Maybe")
    assert not lists_options("The answer is (B).")
    assert not lists_options("Plan A. Then plan B. Then C.")  # letters mid-line are not a list


@given(st.text())
def test_text_functions_never_crash(text):
    split_answer_clause(text)
    has_reasoning(text, 3)
    is_imitative(text)
    lists_options(text)
    assert 0.0 <= rep_n(list(text), 2) <= 1.0
    assert 0.0 <= rep_n(words(text), 1) <= 1.0
    assert pattern_failure(text, 3) in (None, "imitative", "option_listing", "direct_response")


SENTENCE = st.lists(st.sampled_from(["pears", "float", "because", "their", "density", "is", "low", "water"]),
                    min_size=3, max_size=8).map(lambda ws: " ".join(ws).capitalize() + ".")


@given(st.lists(SENTENCE, min_size=2, max_size=5), st.sampled_from(["", " Yes.", " No,", " (B)", " 1. Yes."]))
def test_several_sentences_are_reasoning_with_or_without_a_bare_answer(sentences, opener):
    text = opener + " " + " ".join(sentences)
    assert not is_direct_response(text, 3)
    assert has_reasoning(text + " So the answer is no.", 3)


@given(SENTENCE, st.sampled_from([" Yes.", " No,", " (C)", "\nNo.", " 2. No."]))
def test_bare_answer_and_one_clause_is_a_direct_response(sentence, opener):
    assert is_direct_response(opener + " " + sentence, 3)


@given(st.text())
def test_kept_reasoning_holds_no_answer_clause_and_no_extra_space(text):
    kept = kept_reasoning(text)
    if split_answer_clause(text)[1] is None:
        assert split_answer_clause(kept)[1] is None and kept.split() == text.split()
    assert kept == " ".join(kept.split())
