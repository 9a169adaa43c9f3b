from hypothesis import given
from hypothesis import strategies as st

from sert.config import PromptConfig
from sert.formats import distill_text, fill_prompt, finetune_text, self_train_text
from sert.text import kept_reasoning
from sert.tasks import Example

EX = Example("q1", "What is 7 + 6 mod 10?", "3")
P = PromptConfig()


def test_self_training_text_is_the_papers():
    prompt, target = self_train_text(EX, " First, 7 + 6 = 3. So the answer is 9.", P)
    assert prompt + target == "Question: What is 7 + 6 mod 10? Answer: First, 7 + 6 = 3. So the answer is 3."


def test_distillation_text_is_the_papers():
    prompt, target = distill_text(EX, "7 + 6 = 13, last digit 3.\n", P)
    assert prompt + target == ("Question: What is 7 + 6 mod 10? Answer: Let's think step by step. "
                               "7 + 6 = 13, last digit 3. So the answer is 3.")


def test_finetune_text_is_labels_only():
    assert finetune_text(EX, P) == ("Question: What is 7 + 6 mod 10? Answer:", " 3.")


def test_reasoning_drops_the_samples_own_conclusion():
    assert kept_reasoning("  First, a.\n Then b.  Therefore, the answer is 5. More.") == "First, a. Then b."


def test_no_doubled_terminal_mark_after_real_questions():
    assert fill_prompt(P.train, "Can a pear sink in water?") == "Question: Can a pear sink in water? Answer:"
    csqa = "Where would you put a plate? Answer choices: (A) shelf, (B) floor, (C) sink, (D) oven, (E) avoid."
    assert fill_prompt(P.train, csqa) == f"Question: {csqa} Answer:"
    assert fill_prompt(P.train, "Pears float") == "Question: Pears float. Answer:"  # no mark: the period stays
    assert fill_prompt(P.zero_shot, "Can a pear sink in water?") == "Question: Can a pear sink in water?\nAnswer:"
    assert fill_prompt("{question}. {question}", "Why?") == "Why? Why?"


@given(st.text(min_size=1).filter(lambda q: "{" not in q and "}" not in q))
def test_filled_training_prompt_never_doubles_a_mark(question):
    filled = fill_prompt(P.train, question)
    assert filled.startswith("Question: " + question)
    rest = filled[len("Question: " + question):]
    assert rest == (" Answer:" if question.rstrip().endswith((".", "?", "!")) else ". Answer:")
