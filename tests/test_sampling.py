import math

import torch

from sert.sampling import SampleConfig, generate_greedy, sample_latent_paths, top_k_top_p


def test_top_k_top_p_only_picks_allowed_tokens():
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0, 3.0]]).repeat(200, 1)
    g = torch.Generator().manual_seed(0)
    picked = set(top_k_top_p(logits, k=2, p=1.0, temperature=1.0, generator=g).tolist())
    assert picked == {0, 1}
    # top-p keeps the smallest prefix with the mass: token 0 alone holds > 0.5 here
    picked = set(top_k_top_p(logits, k=5, p=0.5, temperature=1.0, generator=g).tolist())
    assert picked == {0}


def test_latent_path_sampling_protocol(tiny_student):
    model, tok = tiny_student
    cfg = SampleConfig(branches=3, samples_per_branch=2, max_new_tokens=6, batch_size=2, seed=1)
    prompts = [("a", "Question: What is 1 + 2 mod 10?\nAnswer:"), ("b", "Question: x\nAnswer:"),
               ("c", "Question: What is 3 + 3 + 3 mod 10?\nAnswer:")]
    samples = list(sample_latent_paths(model, tok, prompts, cfg))
    assert len(samples) == 3 * 3 * 2
    for sample in samples:
        assert 0 <= sample.n_tokens <= 6 and 0 <= sample.rep2 <= 1
        assert sample.n_tokens == 0 or sample.perplexity >= 1.0
    # each branch starts with its own first token, shared by its samples
    first = {(s.id, s.branch): s.branch_token for s in samples}
    assert len({first[("a", b)] for b in range(3)}) == 3
    assert samples == list(sample_latent_paths(model, tok, prompts, cfg))  # seeded


def test_perplexity_matches_a_separate_forward_pass(tiny_student):
    model, tok = tiny_student
    prompt = "Question: What is 1 + 2 mod 10?\nAnswer:"
    cfg = SampleConfig(branches=1, samples_per_branch=1, max_new_tokens=5, batch_size=1)
    (sample,) = list(sample_latent_paths(model, tok, [("a", prompt)], cfg))
    ids = tok(prompt)["input_ids"]
    gen = tok(sample.text)["input_ids"]
    if len(gen) != sample.n_tokens:  # re-tokenisation can differ from the sampled ids; nothing to compare
        return
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids + gen])).logits[0].float(), -1)
    nll = -sum(logp[len(ids) - 1 + i, t].item() for i, t in enumerate(gen)) / len(gen)
    assert math.isclose(sample.perplexity, math.exp(nll), rel_tol=1e-3)


def test_greedy_is_batch_independent(tiny_student):
    model, tok = tiny_student
    prompts = ["Question: What is 1 + 2 mod 10?\nAnswer:", "Q", "Question: What is 9 + 9 + 9 + 9 mod 10?\nAnswer:"]
    together = generate_greedy(model, tok, prompts, 8, batch_size=3)
    alone = [generate_greedy(model, tok, [p], 8, batch_size=1)[0] for p in prompts]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]
