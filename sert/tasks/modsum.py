"""modsum: sums of single digits mod 10, the embedded default's synthetic reasoning task.

"What is 7 + 6 + 2 + 9 mod 10?" has answer 4. The direct answer needs all terms at once
(hard for a tiny model to learn from bare answers), while the worked solution chains
single steps that are each easy and common in the pretraining corpus:

    First, 7 + 6 = 3. Then 3 + 2 = 5. Then 5 + 9 = 4. So the answer is 4.

The pretraining corpus (``pretraining_corpus``) builds the paper's phenomenon in
miniature: single-step facts are common, worked solutions a minority of question documents
(latent: below what greedy decoding picks), bare answers the majority. Worked solutions
begin with a word of their own ("First") so that first-token branching can surface them.
"""

from __future__ import annotations

import random
import re
from pydantic import Field

from sert.config import Int, config_class

from sert.tasks.base import Example, GeneratedSizes, Task, TaskError
from sert.tasks.registry import register_task


FACTS_PER_DOCUMENT = 1
ORACLE_OPENING = "We add the numbers one at a time and keep the last digit. "
"""The oracle teacher's first sentence (its own words, not the student's latent "First, ...")."""


@config_class(frozen=True)
class ModsumOptions(GeneratedSizes):
    """``task.options.modsum``: the tiny world's sizes and question length."""

    n_train: Int = Field(400, ge=1)
    """Training questions to generate."""
    n_test: Int = Field(200, ge=1)
    """Test questions to generate, disjoint from the training ones."""
    n_terms: Int = Field(4, ge=2, le=8)
    """Number of single-digit terms per question (chain length is n_terms - 1 steps)."""


def _terms_key(terms: tuple[int, ...]) -> str:
    return " + ".join(map(str, terms))


def question_text(terms: tuple[int, ...]) -> str:
    return f"What is {_terms_key(terms)} mod 10?"


def fact(a: int, b: int) -> str:
    return f"{a} + {b} = {(a + b) % 10}"


def worked_steps(terms: tuple[int, ...]) -> list[str]:
    """The single steps of the chain: running total plus the next term."""
    steps, total = [], terms[0]
    for term in terms[1:]:
        steps.append(fact(total, term))
        total = (total + term) % 10
    return steps


def worked_solution(terms: tuple[int, ...]) -> str:
    """The student's latent style: "First, a + b = c. Then c + d = e." (no conclusion)."""
    steps = worked_steps(terms)
    return " ".join(["First, " + steps[0] + "."] + ["Then " + step + "." for step in steps[1:]])


@register_task
class Modsum(Task):
    """Sums of single digits mod 10 (synthetic, generated with task.seed)."""

    name = "modsum"
    Options = ModsumOptions
    answer_space = tuple(str(d) for d in range(10))
    candidate_pattern = re.compile(r"(?<![\w.])\d+(?![\w])")

    @classmethod
    def check_options(cls, options: ModsumOptions, key: str) -> None:
        total = options.n_train + options.n_test
        if total > 10**options.n_terms:
            raise TaskError(f"{key}: modsum with {options.n_terms} terms has only {10**options.n_terms} distinct "
                            f"questions, asked for {total}")

    @staticmethod
    def terms_of(example: Example) -> tuple[int, ...]:
        match = re.fullmatch(r"What is ([\d +]+) mod 10\?", example.question)
        if match is None:
            raise TaskError(f"record {example.id!r} is not a modsum question: {example.question!r}")
        return tuple(int(t) for t in match.group(1).split(" + "))

    def splits(self) -> dict[str, list[Example]]:
        cfg, n = self.config, self.options.n_terms
        total = self.options.n_train + self.options.n_test
        rng = random.Random(cfg.seed)
        # Sample distinct term tuples without materialising all 10**n of them.
        chosen = rng.sample(range(10**n), total)
        questions = [tuple(int(c) for c in str(k).zfill(n)) for k in chosen]
        examples = [
            Example(id=f"modsum-{i}", question=question_text(t), answer=str(sum(t) % 10))
            for i, t in enumerate(questions)
        ]
        # Imported here: scikit-learn costs ~2 s of imports that every other stage would pay.
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(examples, test_size=self.options.n_test, random_state=cfg.seed)
        return {"train": list(train), "test": list(test)}

    def tokenizer_vocabulary(self) -> tuple[str, ...]:
        return super().tokenizer_vocabulary() + (" " + ORACLE_OPENING.strip(),)  # as distillation texts hold it

    def oracle_rationale(self, example: Example) -> str:
        """A correct rationale in the teacher's own words (not the student's latent style)."""
        terms = self.terms_of(example)
        steps = worked_steps(terms)
        return ORACLE_OPENING + " ".join(f"{step}." for step in steps)

    def wrong_rationale(self, example: Example, rng: random.Random) -> str:
        """The oracle's rationale with one step's sum wrong (a random step, a random wrong digit);
        the later steps add correctly to the wrong running total, so the error shifts every later
        total by the same non-zero amount mod 10 and the final answer is always wrong."""
        terms = self.terms_of(example)
        wrong_step = rng.randrange(len(terms) - 1)
        steps, total = [], terms[0]
        for i, term in enumerate(terms[1:]):
            result = (total + term) % 10
            if i == wrong_step:
                result = (result + rng.randrange(1, 10)) % 10
            steps.append(f"{total} + {term} = {result}")
            total = result
        return ORACLE_OPENING + " ".join(f"{step}." for step in steps)

    def pretraining_corpus(self, rng, n_documents, worked_fraction, fact_fraction, exclude, train=()):
        """Documents as (text, trained) segments: fact documents of several single steps
        ("Fact: 7 + 6 =" | " 3 mod 10."), and question documents whose answer is worked
        (``worked_fraction`` of them) or bare ("So the answer is 4."). Questions in ``exclude``
        (the train and test splits) never appear, so no test answer is memorized.

        Only what the context determines is trained: operands and questions are uniformly
        random, and predicting them taught nothing while slowing the learning of the facts
        several-fold in our measurements (a tiny model sat on a plateau for 1,000+ steps).
        """
        n = self.options.n_terms
        docs = []
        for _ in range(n_documents):
            if rng.random() < fact_fraction:
                doc = []
                for k in range(FACTS_PER_DOCUMENT):
                    a, b = rng.randrange(10), rng.randrange(10)
                    doc += [(f"{' ' if k else ''}Fact: {a} + {b} =", False), (f" {(a + b) % 10} mod 10.", True)]
                docs.append(doc)
                continue
            while True:
                terms = tuple(rng.randrange(10) for _ in range(n))
                if question_text(terms) not in exclude:
                    break
            body = worked_solution(terms) + " " if rng.random() < worked_fraction else ""
            docs.append([(f"Question: {question_text(terms)}\nAnswer:", False),
                         (f" {body}So the answer is {sum(terms) % 10}.", True)])
        return docs

