from sert.formats import PromptConfig, distill_text, finetune_text, reasoning_of, self_train_text
from sert.tasks import Example

EX = Example("q1", "What is 7 + 6 mod 10?", "3")
P = PromptConfig()


def test_self_training_text_is_the_papers():
    prompt, target = self_train_text(EX, " First, 7 + 6 = 3. So the answer is 9.", P)
    assert prompt + target == "Question: What is 7 + 6 mod 10?. Answer: First, 7 + 6 = 3. So the answer is 3."


def test_distillation_text_is_the_papers():
    prompt, target = distill_text(EX, "7 + 6 = 13, last digit 3.\n", P)
    assert prompt + target == ("Question: What is 7 + 6 mod 10?. Answer: Let's think step by step. "
                               "7 + 6 = 13, last digit 3. So the answer is 3.")


def test_finetune_text_is_labels_only():
    assert finetune_text(EX, P) == ("Question: What is 7 + 6 mod 10?. Answer:", " 3.")


def test_reasoning_drops_the_samples_own_conclusion():
    assert reasoning_of("  First, a.\n Then b.  Therefore, the answer is 5. More.") == "First, a. Then b."
