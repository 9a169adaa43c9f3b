"""Each variant's training texts and the final loss (sert/variants.py, sert/training.py): the pure parts."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sert.config import PromptConfig
from sert.formats import keeps_rationale
from sert.tasks import Example
from sert.training import final_loss
from sert.variants import distill_texts, finetune_texts, self_training_texts

PROMPTS = PromptConfig()
EXAMPLES = [Example("1", "Is ice cold?", "yes"), Example("2", "Is fire cold?", "no")]


def test_final_loss_is_the_mean_of_the_last_five_percent():
    assert final_loss([9.0] * 38 + [1.0, 2.0]) == 1.5      # 40 steps: the last 2
    assert final_loss([3.0, 0.123456]) == 0.1235           # fewer than 20 steps: the last one
    with pytest.raises(ValueError, match="no steps"):
        final_loss([])


def test_only_correct_rule():
    assert keeps_rationale(True, True) and keeps_rationale(True, False) and keeps_rationale(False, False)
    assert not keeps_rationale(False, True)


def test_texts_of_each_variant():
    rationales = [{"id": "2", "rationale": "Fire is hot. So the answer is no.", "correct": True},
                  {"id": "1", "rationale": "Ice is hot.", "correct": False},
                  {"id": "9", "rationale": "Not a training question.", "correct": True}]
    assert finetune_texts(EXAMPLES, PROMPTS) == [("Question: Is ice cold? Answer:", " yes."),
                                                 ("Question: Is fire cold? Answer:", " no.")]
    assert distill_texts(EXAMPLES, rationales, PROMPTS, only_correct=True) == [
        ("Question: Is fire cold? Answer:", " Let's think step by step. Fire is hot. So the answer is no.")]
    both = distill_texts(EXAMPLES, rationales, PROMPTS, only_correct=False)
    assert [prompt for prompt, _ in both] == ["Question: Is fire cold? Answer:", "Question: Is ice cold? Answer:"]
    records = [{"id": "1", "question": "Is ice cold?", "answer": "yes", "reasoning": "Ice is frozen water."}]
    assert self_training_texts(records, PROMPTS) == [
        ("Question: Is ice cold? Answer:", " Ice is frozen water. So the answer is yes.")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.booleans()), max_size=20), st.booleans())
def test_distillation_keeps_exactly_the_rule_s_rationales(rows, only_correct):
    rationales = [{"id": i, "rationale": f"Because {n}.", "correct": c} for n, (i, c) in enumerate(rows)]
    texts = distill_texts(EXAMPLES, rationales, PROMPTS, only_correct)
    expected = [r for r in rationales if r["id"] in ("1", "2") and keeps_rationale(r["correct"], only_correct)]
    assert len(texts) == len(expected)
    assert all(f"Because {r['rationale'][8:-1]}." in target for r, (_, target) in zip(expected, texts))
