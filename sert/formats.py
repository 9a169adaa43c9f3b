"""Prompt and training-text formats (the paper's, as templates in params).

Every training text is ``prompt + target``; the loss covers the target only.
  self-training:  Question: {q}. Answer: {r} So the answer is {a}.
  distillation:   Question: {q}. Answer: Let's think step by step. {R} So the answer is {a}.
  fine-tuning:    Question: {q}. Answer: {a}.

Filling ``{question}``: the paper's training prompt puts a period after the question, but real
questions already end in one ("Can a pear sink in water?", CSQA's "... (E) avoid."); filled
literally that gives "water?. Answer:" and "avoid.. Answer:". ``fill_prompt`` drops the
template's "." right after ``{question}`` when the question already ends in ". ? !", so the
model reads "water? Answer:" and "avoid. Answer:"; other questions get the period. Every
prompt (training texts, evaluation, sampling in later rounds) is filled by it, so training and
evaluation see the same text.
"""

from __future__ import annotations

from sert.config import PromptConfig
from sert.tasks import Example
from sert.text import kept_reasoning

TERMINAL = (".", "?", "!")


def fill_prompt(template: str, question: str) -> str:
    """``template`` with ``{question}`` filled in, without a doubled terminal mark (module docstring)."""
    if question.rstrip().endswith(TERMINAL):
        template = template.replace("{question}.", "{question}")
    return template.format(question=question)


def self_train_text(example: Example, sample_text: str, p: PromptConfig) -> tuple[str, str]:
    return (fill_prompt(p.train, example.question),
            " " + kept_reasoning(sample_text) + p.conclusion.format(answer=example.answer))


def distill_text(example: Example, rationale: str, p: PromptConfig) -> tuple[str, str]:
    return (fill_prompt(p.train, example.question),
            p.step_by_step + " " + kept_reasoning(rationale) + p.conclusion.format(answer=example.answer))


def finetune_text(example: Example, p: PromptConfig) -> tuple[str, str]:
    return fill_prompt(p.train, example.question), p.label.format(answer=example.answer)


def keeps_rationale(correct: bool, only_correct: bool) -> bool:
    """The only-correct rule (``teacher.only_correct``): distillation trains on a rationale whose answer
    is right, and on every rationale when the rule is off."""
    return correct or not only_correct

