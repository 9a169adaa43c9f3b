"""The symbolic chain-of-thought tasks of Wei et al. / Kojima et al., generated with a seed.

  coinflip    "A coin is heads up. Ka flips the coin. Sherrie does not flip the coin. Is the coin
              still heads up?"  -> yes / no
  lastletter  'Take the last letters of each words in "Lady Umar Carmen" and concatenate them.'
              -> "yrn"
Both generate unlimited fresh questions, so the tiny student can be pretrained on questions
outside the splits (with generated step-by-step references in ``pretrain.worked_fraction``).
``task.options.<name>``: ``n_items`` people flipping / names to concatenate (default 4, as in the
papers) and the split sizes ``n_train`` / ``n_test`` (default 350 / 150: Fine-tune-CoT's 500
questions split 70/30).
"""

from __future__ import annotations

import random
import re
from pydantic import Field

from sert.config import Int, config_class

from sert.errors import TaskError
from sert.tasks.base import Example, GeneratedSizes, Task
from sert.tasks.registry import register_task
from sert.tasks.strategyqa import yes_no_candidates

NAMES = (
    "Ka Sherrie Jamey Maya Ira Leo Nora Omar Rosa Ivan Elon Bill Tina Paul Dana Cole Ruth Hugo Lina Yuki "
    "Carmen Shalom Umar Lady Otis Wren Gale Abel Zora Milo Tess Ravi Enid Joel Kira Amos Bree Dale Faye Nash"
).split()


@config_class(frozen=True)
class SymbolicOptions(GeneratedSizes):
    """``task.options.coinflip`` / ``task.options.lastletter``."""

    n_items: Int = Field(4, ge=1, le=8)
    """People flipping the coin / names to concatenate (Wei et al., Kojima et al.: 4)."""


class GeneratedTask(Task):
    """A task that generates its questions: ``draw`` one (question, answer, reference) from an rng."""

    Options = SymbolicOptions

    @property
    def n_items(self) -> int:
        return self.options.n_items

    def draw(self, rng: random.Random) -> tuple[str, str, str]:
        raise NotImplementedError

    def practice_example(self, rng: random.Random) -> Example:
        question, answer, reference = self.draw(rng)
        return Example(id="practice", question=question, answer=answer, reference=reference)

    def splits(self) -> dict[str, list[Example]]:
        n_train, n_test = self.options.n_train, self.options.n_test
        rng, seen, examples = random.Random(self.config.seed), set(), []
        total = n_train + n_test
        for _attempt in range(total * 50):
            if len(examples) == total:
                break
            question, answer, reference = self.draw(rng)
            if question not in seen:
                seen.add(question)
                examples.append(Example(f"{self.name}-{len(examples)}", question, answer, reference=reference))
        if len(examples) < total:
            raise TaskError(f"{self.name}: could only generate {len(examples)} distinct questions, asked for {total}")
        return {"train": examples[:n_train], "test": examples[n_train:]}


@register_task
class CoinFlip(GeneratedTask):
    """Coin flip: is the coin still heads up after each person flips it or not?"""

    name = "coinflip"
    answer_space = ("yes", "no")

    def candidates(self, text: str) -> list[str]:
        return yes_no_candidates(text)

    def draw(self, rng):
        people = rng.sample(NAMES, self.n_items)
        flips = [rng.random() < 0.5 for _ in people]
        actions = " ".join(f"{p} {'flips' if f else 'does not flip'} the coin." for p, f in zip(people, flips))
        question = f"A coin is heads up. {actions} Is the coin still heads up?"
        steps, heads = [], True
        for person, flip in zip(people, flips):
            heads ^= flip
            side = "heads" if heads else "tails"
            steps.append(f"{person} flips it, so it is {side} up." if flip else f"{person} does not flip it, so it stays {side} up.")
        reference = "The coin starts heads up. " + " ".join(steps) + (
            " It ends heads up, so yes." if heads else " It ends tails up, so no.")
        return question, "yes" if heads else "no", reference


_WORD = re.compile(r"[a-z]+")


@register_task
class LastLetter(GeneratedTask):
    """Last-letter concatenation of a few names."""

    name = "lastletter"

    def candidates(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def validate(self, example: Example, where: str) -> None:
        if not re.fullmatch(r"[a-z]+", example.answer):
            raise TaskError(f"{where}: record {example.id!r} has answer {example.answer!r}, expected lowercase letters")

    def is_correct(self, prediction, example) -> bool:
        return prediction is not None and prediction.lower() == example.answer

    def draw(self, rng):
        names = rng.sample(NAMES, self.n_items)
        question = f'Take the last letters of each words in "{" ".join(names)}" and concatenate them.'
        answer = "".join(n[-1] for n in names).lower()
        reference = " ".join(f'The last letter of "{n}" is "{n[-1]}".' for n in names)
        reference += f' Concatenating them is "{answer}".'
        return question, answer, reference
