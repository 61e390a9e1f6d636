#!/usr/bin/python3
"""Writes tests/Encore.Generation.Tests/Fixtures/tiny_generation/: a tiny random encoder–decoder as an
Encore checkpoint (config.json with "model_type": "encore", model.safetensors written by hand from
the format's spec) and expected.json with what generation must produce, computed here in plain
torch by full recomputation (no KV cache): the model math restated from Encore's layout (RMSNorm
pre-norm blocks, RoPE half-split with centered positions in the encoder and 0.. in the decoder,
grouped-query attention as HF repeat_kv, no positions in cross-attention, GELU-tanh MLP, final
norms, untied LM head), then
  - greedy decoding of three sources of different lengths, each alone (a batched run must match),
    with the first step's logits for an error figure;
  - beam search with Hugging Face's BeamSearchScorer rules (top 2K candidates, EOS ranked below K
    skipped, hypotheses scored sum log p / len^α with len the new tokens before EOS, early_stopping
    False heuristic, live beams added at max_new_tokens).

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/generation_fixtures.py
"""
import json
import math
import os

import torch

from refio import write_safetensors
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)
V, D, H, HKV, HD, FF, EPS, THETA = 16, 16, 2, 1, 8, 32, 1e-6, 10000.0
PAD, EOS, START = 0, 1, 0


def matrix(out_f, in_f):
    return torch.randn(out_f, in_f) / math.sqrt(in_f)


def norm_weight():
    return 1.0 + 0.1 * torch.randn(D)


P = {"embed_tokens.weight": torch.randn(V, D)}


def attention_params(scope):
    P[scope + ".q_proj.weight"] = matrix(H * HD, D)
    P[scope + ".k_proj.weight"] = matrix(HKV * HD, D)
    P[scope + ".v_proj.weight"] = matrix(HKV * HD, D)
    P[scope + ".o_proj.weight"] = matrix(D, H * HD)


def block_params(scope, cross):
    attention_params(scope + ".self_attn")
    P[scope + ".self_attn_norm.weight"] = norm_weight()
    if cross:
        attention_params(scope + ".cross_attn")
        P[scope + ".cross_attn_norm.weight"] = norm_weight()
    P[scope + ".mlp.up_proj.weight"] = matrix(FF, D)
    P[scope + ".mlp.down_proj.weight"] = matrix(D, FF)
    P[scope + ".mlp_norm.weight"] = norm_weight()


block_params("encoder.layers.0", False)
P["encoder.final_norm.weight"] = norm_weight()
block_params("decoder.layers.0", True)
P["decoder.final_norm.weight"] = norm_weight()
P["lm_head.weight"] = matrix(V, D)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x, pos):
    # x (L, heads, hd), half-split layout (HF rotate_half); pos (L,)
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).float()[:, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1).float()[:, None, :]
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attend(x, kv_src, scope, q_pos, k_pos, causal):
    # x (T, D) queries, kv_src (S, D); positions None for cross-attention
    q = (x @ P[scope + ".q_proj.weight"].T).view(-1, H, HD)
    k = (kv_src @ P[scope + ".k_proj.weight"].T).view(-1, HKV, HD)
    v = (kv_src @ P[scope + ".v_proj.weight"].T).view(-1, HKV, HD)
    if q_pos is not None:
        q, k = rope(q, q_pos), rope(k, k_pos)
    k = k.repeat_interleave(H // HKV, dim=1)
    v = v.repeat_interleave(H // HKV, dim=1)
    s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(HD)
    if causal:
        t, n = s.shape[1], s.shape[2]
        s = s.masked_fill(~torch.tril(torch.ones(t, n, dtype=torch.bool)), float("-inf"))
    a = torch.einsum("hts,shd->thd", s.softmax(-1), v).reshape(-1, H * HD)
    return a @ P[scope + ".o_proj.weight"].T


def mlp(x, scope):
    return F.gelu(x @ P[scope + ".mlp.up_proj.weight"].T, approximate="tanh") @ P[scope + ".mlp.down_proj.weight"].T


def encode(src):
    s = len(src)
    x = P["embed_tokens.weight"][torch.tensor(src)]
    pos = torch.arange(s, dtype=torch.float32) - (s - 1) / 2
    sc = "encoder.layers.0"
    n = rms(x, P[sc + ".self_attn_norm.weight"])
    x = x + attend(n, n, sc + ".self_attn", pos, pos, False)
    x = x + mlp(rms(x, P[sc + ".mlp_norm.weight"]), sc)
    return rms(x, P["encoder.final_norm.weight"])


def decode(memory, dec_in):
    # log-probabilities (T, V) of every position
    t = len(dec_in)
    y = P["embed_tokens.weight"][torch.tensor(dec_in)]
    pos = torch.arange(t, dtype=torch.float32)
    sc = "decoder.layers.0"
    n = rms(y, P[sc + ".self_attn_norm.weight"])
    y = y + attend(n, n, sc + ".self_attn", pos, pos, True)
    y = y + attend(rms(y, P[sc + ".cross_attn_norm.weight"]), memory, sc + ".cross_attn", None, None, False)
    y = y + mlp(rms(y, P[sc + ".mlp_norm.weight"]), sc)
    return rms(y, P["decoder.final_norm.weight"]) @ P["lm_head.weight"].T


def next_logprobs(memory, prefix):
    return torch.log_softmax(decode(memory, prefix)[-1].double(), -1)


def greedy(src, max_new):
    mem = encode(src)
    seq, total = [START], 0.0
    for _ in range(max_new):
        lp = next_logprobs(mem, seq)
        t = int(lp.argmax())
        total += float(lp[t])
        seq.append(t)
        if t == EOS:
            break
    return seq[1:], total, decode(mem, [START])[-1].tolist()


def processed_greedy(src, max_new, penalty, ngram, min_new):
    # HF RepetitionPenaltyLogitsProcessor, NoRepeatNGramLogitsProcessor, MinNewTokensLengthLogitsProcessor, then argmax.
    mem = encode(src)
    seq = [START]
    for step in range(max_new):
        x = decode(mem, seq)[-1].double()
        for t in set(seq):
            x[t] = x[t] * penalty if x[t] < 0 else x[t] / penalty
        if len(seq) + 1 >= ngram:
            prefix = seq[len(seq) - (ngram - 1):]
            for i in range(len(seq) - ngram + 1):
                if seq[i:i + ngram - 1] == prefix:
                    x[seq[i + ngram - 1]] = float("-inf")
        if step < min_new:
            x[EOS] = float("-inf")
        t = int(x.argmax())
        seq.append(t)
        if t == EOS:
            break
    return seq[1:]


def beam_search(src, k, alpha, max_new, n_return, early=False):
    mem = encode(src)
    beams = [([START], 0.0)] + [([START], -1e9)] * (k - 1)
    hyps = []

    def add(tokens, score):
        if len(hyps) < k:
            hyps.append((score, tokens))
        elif score > min(h[0] for h in hyps):
            hyps.remove(min(hyps, key=lambda h: h[0]))
            hyps.append((score, tokens))

    done = False
    for step in range(1, max_new + 1):
        cands = []
        for j, (seq, s) in enumerate(beams):
            lp = next_logprobs(mem, seq)
            for t in range(V):
                cands.append((s + float(lp[t]), j * V + t))
        cands.sort(key=lambda c: (-c[0], c[1]))
        nxt = []
        for rank, (score, idx) in enumerate(cands[: 2 * k]):
            j, t = divmod(idx, V)
            if t == EOS:
                if rank < k:
                    gen = beams[j][0][1:]
                    add(gen + [t], score / max(1, len(gen)) ** alpha)
                continue
            nxt.append((beams[j][0] + [t], score))
            if len(nxt) == k:
                break
        if len(hyps) >= k:
            done = early or min(h[0] for h in hyps) >= cands[0][0] / max(1, step - 1) ** alpha
        beams = nxt
        if done:
            break
    if not done:
        for seq, s in beams:
            add(seq[1:], s / len(seq[1:]) ** alpha)
    hyps.sort(key=lambda h: -h[0])
    return [{"tokens": h[1], "score": h[0]} for h in hyps[:n_return]]


sources = [[3, 5, 7, 2, 9], [4, 6, 11], [12, 2, 8, 8, 5, 14, 10]]
expected = {"greedy": [], "beam": [], "processed": []}
for src in sources:
    tokens, total, first = greedy(src, 10)
    expected["greedy"].append({"source": src, "tokens": tokens, "log_prob": total, "first_logits": first})
for src in sources:
    expected["processed"].append({"source": src, "repetition_penalty": 1.5, "no_repeat_ngram_size": 2, "min_new_tokens": 3,
                                  "max_new_tokens": 10, "tokens": processed_greedy(src, 10, 1.5, 2, 3)})


def beam_case(name, k, alpha, max_new, early):
    for src in sources:
        expected["beam"].append({"case": name, "source": src, "num_beams": k, "length_penalty": alpha,
                                 "max_new_tokens": max_new, "early_stopping": early,
                                 "sequences": beam_search(src, k, alpha, max_new, k, early)})


beam_case("short", 3, 1.0, 6, False)
beam_case("short_alpha_0.5", 3, 0.5, 6, False)
# Long hypotheses favoured (α = 2): early_stopping ends requests that the heuristic lets run on.
beam_case("long", 2, 2.0, 12, False)
beam_case("long_early", 2, 2.0, 12, True)
# Here HF's heuristic stops [4, 6, 11] at 10 tokens although running on would find better hypotheses.
beam_case("heuristic", 3, 1.0, 12, False)

config = {
    "model_type": "encore", "family": "EncoderDecoder", "vocab_size": V, "d_model": D, "encoder_layers": 1,
    "decoder_layers": 1, "heads": H, "kv_heads": HKV, "head_dim": HD, "ffn_dim": FF, "activation": "GeluTanh",
    "gated_ffn": False, "norm": "RmsNorm", "post_norm": False, "norm_eps": EPS, "qkv_bias": False,
    "output_bias": False, "mlp_bias": False, "tie_embeddings": False, "scale_tied_logits": False,
    "attention_scale": None,
    "encoder_positions": {"kind": "Rope", "rope_theta": THETA, "rope_ntk_scale": 1, "rope_centered": True,
                          "relative_buckets": 32, "relative_max_distance": 128},
    "decoder_positions": {"kind": "Rope", "rope_theta": THETA, "rope_ntk_scale": 1, "rope_centered": False,
                          "relative_buckets": 32, "relative_max_distance": 128},
    "max_positions": 2048, "type_vocab_size": 0, "embedding_norm": False, "final_norm": True, "dropout": 0,
    "pad_token_id": PAD, "eos_token_id": EOS, "bos_token_id": -1, "decoder_start_token_id": START,
}

out = os.path.join(os.path.dirname(__file__), "../../tests/Encore.Generation.Tests/Fixtures/tiny_generation")
os.makedirs(out, exist_ok=True)
write_safetensors(os.path.join(out, "model.safetensors"), P)
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
print("wrote", os.path.normpath(out))
for g in expected["greedy"]:
    print("greedy", g["source"], g["tokens"])
for g in expected["processed"]:
    print("processed", g["source"], g["tokens"])
for b in expected["beam"]:
    print("beam", b["case"], b["source"], [(s["tokens"], round(s["score"], 4)) for s in b["sequences"]])
