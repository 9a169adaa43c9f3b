from hypothesis import given
from hypothesis import strategies as st

from sert.text import has_reasoning, is_imitative, lists_options, rep_n, split_answer_clause


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


def test_has_reasoning_needs_words_before_the_answer():
    assert has_reasoning(" First, 7 + 6 = 3. So the answer is 3.", 3)
    assert not has_reasoning(" So the answer is 3.", 3)
    assert not has_reasoning(" First, 7 + 6 = 3. Then 3 + 1 = 4.", 3)  # never concludes


def test_imitation_and_option_listing():
    assert is_imitative(" 3.\n\nQuestion: What is 1 + 2 mod 10?")
    assert is_imitative("blah\nAnswer: 4")
    assert not is_imitative(" First, 7 + 6 = 3. So the answer is 3.")
    assert lists_options("(A) cat (B) dog (C) fish")
    assert not lists_options("The answer is (B).")


@given(st.text())
def test_text_functions_never_crash(text):
    split_answer_clause(text)
    has_reasoning(text, 3)
    is_imitative(text)
    lists_options(text)
    assert 0.0 <= rep_n(list(text), 2) <= 1.0
