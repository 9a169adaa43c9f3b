import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """A randomly initialised tiny GPT-2 with a tokenizer trained on the modsum corpus."""
    from sert.modeling import TinyConfig, build_tiny_model, train_tokenizer
    from sert.tasks import TaskConfig, get_task

    task = get_task(TaskConfig(n_train=10, n_test=5))
    docs = task.pretraining_corpus(random.Random(0), 300, 0.3, 0.5, set())
    tokenizer = train_tokenizer(["".join(t for t, _ in d) for d in docs], 300)
    model = build_tiny_model(TinyConfig(n_layer=1, n_embd=32, n_head=2), tokenizer)
    return model, tokenizer
