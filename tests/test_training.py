"""The training loop: label masking, gradient accumulation, length grouping, precision params,
checkpoint/resume (in-process, and a stage killed with SIGKILL then rerun)."""

import dataclasses
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sert.errors import ParamsError
from sert.config import TrainConfig, parse_section
from hypothesis import given, settings
from hypothesis import strategies as st

from sert.training import (IGNORE, LabelLoss, LiveLossCurve, collate, collate_packed, encode_documents,
                           encode_segments, group_by_length, pack, split_batch, train_causal_lm)

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(seed=0, vocab=50):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                      bos_token_id=0, eos_token_id=0, pad_token_id=0, resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0))


def examples(n=24, seed=1, vocab=50):
    """Prompt/target examples of varied lengths (prompt tokens carry no loss)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt, target = rng.randint(2, 12), rng.randint(1, 20)
        ids = [rng.randrange(1, vocab) for _ in range(prompt + target)]
        out.append((ids, [False] * prompt + [True] * target))
    return out


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_collate_labels_only_where_masked_and_not_on_padding():
    batch = collate([([5, 6, 7, 8], [False, False, True, True]), ([9, 10], [False, True])], pad_id=0, max_length=16)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, 7, 8], [IGNORE, 10, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_label_loss_is_the_cross_entropy_on_label_tokens_only():
    model = tiny_model().eval()
    batch = collate(examples(6), pad_id=0, max_length=64)
    n_labels = int((batch["labels"][:, 1:] != IGNORE).sum())
    summed = LabelLoss(model)(**batch)
    # Hugging Face's own loss: the mean over the same (shifted) label tokens.
    assert torch.allclose(summed / n_labels, model(**batch).loss, rtol=1e-5, atol=1e-6)
    # Changing the targets of non-label positions changes nothing; changing a label token does.
    masked = batch["labels"].clone()
    assert torch.equal(LabelLoss(model)(batch["input_ids"], batch["attention_mask"], masked), summed)
    row, col = (batch["labels"] != IGNORE).nonzero()[-1].tolist()
    other = batch["input_ids"].clone()
    other[row, col] = (other[row, col] + 1) % 50
    changed = torch.where(batch["labels"] != IGNORE, other, IGNORE)
    assert not torch.equal(LabelLoss(model)(other, batch["attention_mask"], changed), summed)
    # The selective head (logits at label positions only) equals the full forward pass.
    full = LabelLoss(model)
    full.selective = False
    assert torch.allclose(full(**batch), summed, rtol=1e-5)


def test_gradient_accumulation_matches_the_full_batch():
    """batch 8 in 2 micro-batches of 4 == batch 8 at once.

    The loss is the token-loss sum of each micro-batch over the token count of the whole
    effective batch, so both runs compute the same gradient up to float summation order
    (different padding widths give different matmul shapes), ~1e-7 relative. Three Adam steps
    at lr 1e-3 keep that far below the 1e-5 tolerance (measured: 1.2e-6); averaging per-micro-batch
    means instead moves the weights by 5e-3 here, so this test tells the two apart.
    """
    data = examples(24)
    cfg = TrainConfig(batch_size=8, lr=1e-3, seed=3, max_length=64, device="cpu", precision="fp32")
    full, accum = tiny_model(), tiny_model()
    losses_full = train_causal_lm(full, data, cfg, 0, total_steps=3, desc="full")
    losses_accum = train_causal_lm(accum, data, dataclasses.replace(cfg, grad_accum=2), 0, total_steps=3, desc="accum")
    assert losses_full == pytest.approx(losses_accum, rel=1e-5)
    a, b = weights(full), weights(accum)
    start = weights(tiny_model())
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=0), name
    assert any(not torch.equal(a[n], start[n]) for n in a)  # it trained


def test_the_loop_matches_transformers_trainer_on_the_same_batches(monkeypatch, tmp_path):
    """The engine and ``transformers.Trainer`` (its own loss on full logits, its optimizer step, no
    clipping) given the same batches in the same order train the same weights: the label-only head,
    the per-token loss and the update rule are the Trainer's. benchmarks/training.py --same-batches
    compares their speed this way."""
    import sert.training
    from accelerate.state import AcceleratorState
    from transformers import Trainer, TrainingArguments

    data = examples(24)
    seen: list[int] = []
    original = sert.training.collate

    def recording(rows, pad_id, max_length):
        seen.extend(id(row) for row in rows)
        return original(rows, pad_id, max_length)
    monkeypatch.setattr(sert.training, "collate", recording)
    cfg = TrainConfig(batch_size=8, lr=1e-3, seed=3, max_length=64, device="cpu", precision="fp32",
                      length_grouping=True)
    engine = tiny_model()
    engine_losses = train_causal_lm(engine, data, cfg, 0, total_steps=3, desc="engine")
    index = {id(row): i for i, row in enumerate(data)}
    order = [index[row] for row in seen]
    assert sorted(order) == list(range(24))  # one epoch: every example once

    def pad(features):  # plain padding: pad id 0, no attention there, labels -100 off the targets
        width = max(len(f["ids"]) for f in features)
        ids = [f["ids"] + [0] * (width - len(f["ids"])) for f in features]
        labels = [[t if m else -100 for t, m in zip(f["ids"], f["mask"])] + [-100] * (width - len(f["ids"]))
                  for f in features]
        mask = [[1] * len(f["ids"]) + [0] * (width - len(f["ids"])) for f in features]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}

    class ReplayTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return order

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3,
                             learning_rate=1e-3, lr_scheduler_type="constant", weight_decay=0.0,
                             max_grad_norm=0.0, optim="adamw_torch", use_cpu=True, report_to=[],
                             save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0,
                             remove_unused_columns=False)
    reference = tiny_model()
    try:
        trainer = ReplayTrainer(model=reference, args=args, data_collator=pad,
                                train_dataset=[{"ids": ids, "mask": mask} for ids, mask in data])
        trainer.train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    trainer_losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert engine_losses == pytest.approx(trainer_losses, abs=1e-3)  # the Trainer logs 4 significant digits
    a, b, start = weights(engine), weights(reference), weights(tiny_model())
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=0), name
    assert any(not torch.equal(a[n], start[n]) for n in a)  # it trained


@given(lengths=st.lists(st.integers(1, 64), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_pack_puts_every_example_in_one_row_that_fits(lengths):
    rows = pack(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    # First fit: no two rows could be merged into one (each pair together exceeds the width).
    totals = [sum(lengths[i] for i in row) for row in rows]
    assert all(a + b > 64 for k, a in enumerate(totals) for b in totals[k + 1:])


def test_collate_packed_keeps_each_example_to_itself():
    batch = collate_packed([([5, 6, 7], [False, True, True]), ([8, 9], [True, True]), ([4, 3, 2, 1], [True] * 4),
                            ([6], [True])], pad_id=0, max_length=6)
    # Rows as wide as the longest example (4), not max_length (6).
    assert batch["input_ids"].tolist() == [[4, 3, 2, 1], [5, 6, 7, 6], [8, 9, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 0, 1]]
    # No loss on an example's first token (nothing of its own predicts it) nor on padding.
    assert batch["labels"].tolist() == [[IGNORE, 3, 2, 1], [IGNORE, 6, 7, IGNORE], [IGNORE, 9, IGNORE, IGNORE]]
    long = collate_packed([([1] * 9, [True] * 9), ([2, 3], [True, True])], pad_id=0, max_length=6)
    assert long["input_ids"].tolist() == [[1] * 6, [2, 3, 0, 0, 0, 0]]  # cut to max_length first
    assert "attention_mask" not in batch


@pytest.mark.parametrize("model_name", ["gpt2", "llama"])
def test_packed_batches_give_the_unpacked_loss_and_gradients(model_name):
    """Packing changes only the matmul shapes: each example sees only itself, at its own
    positions, so the label loss and its gradients equal the padded batch's up to float order."""
    if model_name == "gpt2":
        model = tiny_model()
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                             pad_token_id=0, bos_token_id=0, eos_token_id=0))
    model.eval()
    data = examples(12)
    padded, packed = collate(data, 0, 64), collate_packed(data, 0, 64)
    assert packed["input_ids"].numel() < padded["input_ids"].numel()  # the point: fewer positions
    grads = []
    for batch in (padded, packed):
        model.zero_grad()
        loss = LabelLoss(model)(**batch)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-5)
    for name, g in grads[0][1].items():
        assert torch.allclose(g, grads[1][1][name], rtol=1e-4, atol=1e-6), name


def test_split_batch_and_length_grouping_keep_every_example():
    lengths = [random.Random(i).randint(1, 100) for i in range(200)]
    batch = list(range(8))
    parts = split_batch(batch, lengths, 3)
    assert sorted(i for p in parts for i in p) == batch and [len(p) for p in parts] == [3, 3, 2]
    order = list(range(200))
    random.Random(0).shuffle(order)
    grouped = group_by_length(order, lengths, 8, random.Random(0))
    assert sorted(grouped) == list(range(200))

    def padding(seq):
        return sum(max(lengths[i] for i in seq[k:k + 8]) * len(seq[k:k + 8]) - sum(lengths[i] for i in seq[k:k + 8])
                   for k in range(0, len(seq), 8))
    assert padding(grouped) < padding(order) / 3


@pytest.mark.parametrize("key,value", [("precision", "fp16"), ("device", "tpu"), ("grad_accum", 0),
                                       ("grad_accum", 16), ("checkpoint_every", -1)])
def test_bad_training_params_name_the_key(key, value):
    with pytest.raises(ParamsError, match=rf"^train\.{key}: "):
        parse_section(TrainConfig, {"batch_size": 8, key: value}, "train")
    # The caller's section names the key: pretraining's errors say pretrain, not train.
    with pytest.raises(ParamsError, match=rf"^pretrain\.{key}: "):
        parse_section(TrainConfig, {"batch_size": 8, key: value}, "pretrain")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_params_error():
    with pytest.raises(ParamsError, match="train.device: cuda requested"):
        train_causal_lm(tiny_model(), examples(4), TrainConfig(batch_size=2, device="cuda"), 0, total_steps=1)


def test_bad_precision_in_params_file_fails_before_work(tmp_path):
    from stages.common import load_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["precision"] = "half"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="train.precision: expected 'auto', 'fp32' or 'bf16', got 'half'"):
        load_params(tmp_path / "params.yaml")


def test_bf16_autocast_trains_on_cpu():
    model = tiny_model()
    losses = train_causal_lm(model, examples(8), TrainConfig(batch_size=4, precision="bf16", device="cpu"), 0,
                             total_steps=2)
    assert len(losses) == 2 and all(0 < x < 20 for x in losses)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not a cast of the weights


def test_bf16_inference_copy_leaves_the_callers_weights_alone():
    from sert.modeling import for_inference

    model = tiny_model()
    same = for_inference(model, "fp32", "evaluate")
    assert same is model
    cast = for_inference(model, "bf16", "evaluate")
    assert cast is not model and cast.dtype == torch.bfloat16 and not cast.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


@functools.cache
def cached_gpt2_tokenizer():
    from conftest import gpt2_tokenizer

    return gpt2_tokenizer()


SEGMENT = st.text(alphabet="ab +=?\n0123456789Qé", max_size=12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(SEGMENT, st.booleans()), max_size=4), max_size=6))
def test_encode_documents_matches_encoding_each_document(documents):
    tokenizer = cached_gpt2_tokenizer()
    assert encode_documents(tokenizer, documents) == [encode_segments(tokenizer, d) for d in documents]


class Interrupt(Exception):
    pass


def straight_then_interrupted(data, cfg, total_steps, stop_at, checkpoint_dir):
    """Train one model straight through (returned with its losses), then a fresh one that is
    interrupted after ``stop_at`` steps, leaving its checkpoints in ``checkpoint_dir``."""
    straight = tiny_model()
    expected = train_causal_lm(straight, data, cfg, 0, total_steps=total_steps)

    def stop(step, loss):
        if step == stop_at:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_causal_lm(tiny_model(), data, cfg, 0, total_steps=total_steps, on_step=stop,
                        checkpoint_dir=checkpoint_dir)
    return straight, expected


def test_resume_gives_the_same_weights_bitwise(tmp_path):
    """Interrupted after step 7 (checkpoint at 6), rerun: identical weights and losses to a straight run.

    Bitwise: the checkpoint holds the exact weights, Adam moments and step counts, scheduler,
    RNG states and the remaining data order, and CPU kernels are deterministic for equal inputs.
    """
    data = examples(30)
    cfg = TrainConfig(batch_size=4, lr=3e-3, seed=5, schedule="cosine", warmup_steps=3, max_length=64,
                      length_grouping=True, grad_accum=2, checkpoint_every=3, device="cpu")
    straight, expected = straight_then_interrupted(data, cfg, 14, 7, tmp_path)
    (run,) = tmp_path.iterdir()
    assert sorted(p.name for p in run.iterdir()) == ["step-00000003", "step-00000006"]
    resumed = tiny_model()
    losses = train_causal_lm(resumed, data, cfg, 0, total_steps=14, checkpoint_dir=tmp_path)
    assert losses == expected
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_live_loss_curve_grows_per_step_and_ends_as_the_final_curve(tmp_path, monkeypatch):
    """The CSV holds every finished step while training runs (what `dvc plots show` reads then),
    continues its numbering over a second run, and matches the stage's final rewrite byte for byte."""
    from sert.training import write_loss_curve

    data, cfg = examples(12), TrainConfig(batch_size=4, device="cpu")
    path = tmp_path / "plots" / "sert.csv"
    live = LiveLossCurve(path)
    seen = []

    def watch(step, loss):  # what a reader of the file sees right after each step
        live(step, loss)
        seen.append(path.read_text().splitlines())

    first = train_causal_lm(tiny_model(), data, cfg, 0, total_steps=3, on_step=watch)
    assert [len(rows) for rows in seen] == [2, 3, 4] and seen[0][0] == "step,loss"
    assert seen[-1][1:] == [f"{i},{loss:.6g}" for i, loss in enumerate(first, 1)]
    second = train_causal_lm(tiny_model(seed=1), data, cfg, 0, total_steps=2, on_step=live.shifted(len(first)))
    live_text = path.read_text()
    write_loss_curve(path, first + second)
    assert live_text == path.read_text() and live_text.splitlines()[-1].startswith("5,")
    monkeypatch.setenv("RANK", "1")  # another process of a multi-process launch writes nothing
    LiveLossCurve(path)(0, 1.0)
    assert path.read_text() == live_text


def test_damaged_newest_checkpoint_falls_back_and_other_runs_are_not_resumed(tmp_path):
    data = examples(16)
    cfg = TrainConfig(batch_size=4, checkpoint_every=2, device="cpu")
    straight, expected = straight_then_interrupted(data, cfg, 6, 4, tmp_path)
    (run,) = tmp_path.iterdir()
    (run / "step-00000004" / "trainer.pt").write_bytes(b"truncated")
    resumed = tiny_model()
    assert train_causal_lm(resumed, data, cfg, 0, total_steps=6, checkpoint_dir=tmp_path) == expected
    assert all(torch.equal(a, b) for a, b in zip(weights(straight).values(), weights(resumed).values()))
    # A different run (other lr) gets its own key: it starts from scratch and removes the stale run.
    other = TrainConfig(batch_size=4, checkpoint_every=2, device="cpu", lr=1e-3)
    train_causal_lm(tiny_model(), data, other, 0, total_steps=2, checkpoint_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] != [run.name] and not run.exists()


# --- a real stage, killed with SIGKILL part-way and rerun -------------------------------------------

TINY = {
    "task": {"options": {"modsum": {"n_train": 24, "n_test": 4}}},
    "pretrain": {"n_layer": 1, "n_embd": 32, "n_head": 2, "documents": 400, "steps": 300, "batch_size": 8,
                 "warmup_steps": 30, "checkpoint_every": 10},
    "train": {"epochs": 40, "batch_size": 4, "grad_accum": 2, "checkpoint_every": 10},
}


def run_stage(args, cwd):
    from typer.testing import CliRunner

    from stages.cli import app

    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, args)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return result.output


def kill_part_way(args, cwd, checkpoints: Path, seed: int):
    """Start the stage in a subprocess, SIGKILL it at a random moment after its first checkpoint."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stages.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not any(checkpoints.glob("*/step-*")):
        assert proc.poll() is None, f"stage ended before its first checkpoint: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """Two copies of the project with prepared data: one runs straight, one is killed and rerun."""
    base = tmp_path_factory.mktemp("resume")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    dirs = []
    for name in ("straight", "killed"):
        d = base / name
        d.mkdir()
        (d / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_stage(["prepare"], d)
        dirs.append(d)
    return dirs


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_killed_pretraining_resumes_to_the_same_weights(projects):
    straight, killed = projects
    run_stage(["base"], straight)
    kill_part_way(["base"], killed, killed / ".sert-cache/checkpoints/base", seed=int(time.time()))
    assert not (killed / "models/base").exists(), "the stage finished before the kill: the test proved nothing"
    out = run_stage(["base"], killed)
    assert "pretrain: resumed from step" in out
    assert same_weights(straight / "models/base", killed / "models/base")
    assert not (killed / ".sert-cache/checkpoints/base").exists()  # removed once the outputs are written
    assert (killed / "metrics/plots/pretrain.csv").read_text() == (straight / "metrics/plots/pretrain.csv").read_text()
    assert "seconds" not in json.loads((killed / "metrics/base.json").read_text())


def test_killed_finetuning_resumes_to_the_same_weights(projects):
    straight, killed = projects
    if not (killed / "models/base").exists():
        pytest.skip("needs the pretraining test's models/base")
    run_stage(["train", "finetune"], straight)
    kill_part_way(["train", "finetune"], killed, killed / ".sert-cache/checkpoints/train-finetune", seed=1)
    assert not (killed / "models/finetune").exists(), "the stage finished before the kill: the test proved nothing"
    out = run_stage(["train", "finetune"], killed)
    assert "resumed from step" in out
    assert same_weights(straight / "models/finetune", killed / "models/finetune")
    curve = (killed / "metrics/plots/train/finetune.csv").read_text().splitlines()
    assert curve[0] == "step,loss" and len(curve) == 1 + 40 * 24 // 4
    assert curve == (straight / "metrics/plots/train/finetune.csv").read_text().splitlines()
