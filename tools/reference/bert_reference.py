#!/usr/bin/python3
"""Writes a tiny random BERT checkpoint in the published BertForMaskedLM layout (config.json +
model.safetensors, written by hand from the safetensors specification) and the reference hidden
states and masked-LM logits of a right-padded batch of two, under
tests/Encore.Formats.Tests/Fixtures/bert/.

The model math restates transformers' modeling_bert.py in plain torch:
  BertEmbeddings:     LayerNorm(word[ids] + position[0..S-1] + token_type[types])
  BertSelfAttention:  softmax(q k^T / sqrt(hd) + (1 - mask) * finfo.min) v   (keys masked only)
  BertSelfOutput:     LayerNorm(dense(context) + input)          -> attention.output.LayerNorm
  BertIntermediate:   act(dense(x));  BertOutput: LayerNorm(dense(h) + attention_output) -> output.LayerNorm
  BertLMPredictionHead: LayerNorm(act(transform.dense(x))) @ word_embeddings^T + cls.predictions.bias
ACT2FN: "gelu" is the exact erf GELU, "gelu_new" the tanh approximation.

The tied decoder weight and decoder bias are not stored, as save_pretrained drops tied copies.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/bert_reference.py
"""
import json
import math
import os

import torch

from refio import write_safetensors

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures")



def make_weights(cfg, gen):
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]

    def rnd(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    def dense(name, out, inp):
        w[name + ".weight"] = rnd(out, inp, std=inp ** -0.5)
        w[name + ".bias"] = rnd(out, std=0.2)

    def norm(name):
        w[name + ".weight"] = 1 + rnd(d, std=0.2)
        w[name + ".bias"] = rnd(d, std=0.2)

    w = {
        "bert.embeddings.word_embeddings.weight": rnd(v, d, std=1.0),
        "bert.embeddings.position_embeddings.weight": rnd(cfg["max_position_embeddings"], d, std=0.5),
        "bert.embeddings.token_type_embeddings.weight": rnd(cfg["type_vocab_size"], d, std=0.5),
    }
    norm("bert.embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        dense(p + "attention.self.query", d, d)
        dense(p + "attention.self.key", d, d)
        dense(p + "attention.self.value", d, d)
        dense(p + "attention.output.dense", d, d)
        norm(p + "attention.output.LayerNorm")
        dense(p + "intermediate.dense", f, d)
        dense(p + "output.dense", d, f)
        norm(p + "output.LayerNorm")
    dense("cls.predictions.transform.dense", d, d)
    norm("cls.predictions.transform.LayerNorm")
    w["cls.predictions.bias"] = rnd(v, std=0.2)
    return w


def act_fn(name):
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "gelu_new":
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    raise ValueError(name)


def forward(cfg, w, ids, types, mask):
    """Hidden states (B, S, D) and MLM logits (B, S, V)."""
    d, h = cfg["hidden_size"], cfg["num_attention_heads"]
    hd, eps = d // h, cfg["layer_norm_eps"]
    b, s = ids.shape
    act = act_fn(cfg["hidden_act"])

    def lin(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (d,), w[name + ".weight"], w[name + ".bias"], eps)

    e = "bert.embeddings."
    x = w[e + "word_embeddings.weight"][ids] + w[e + "token_type_embeddings.weight"][types] \
        + w[e + "position_embeddings.weight"][torch.arange(s)][None]
    x = ln(x, e + "LayerNorm")                                                  # (B, S, D)
    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min   # (B, 1, 1, S)
    for i in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."

        def heads(t):
            return t.view(b, s, h, hd).transpose(1, 2)                          # (B, H, S, hd)
        q, k, v = (heads(lin(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + ext
        ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, s, d)
        a = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        x = ln(lin(act(lin(a, p + "intermediate.dense")), p + "output.dense") + a, p + "output.LayerNorm")
    t = ln(act(lin(x, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
    logits = t @ w[e + "word_embeddings.weight"].T + w["cls.predictions.bias"]
    return x, logits


bert = {
    "architectures": ["BertForMaskedLM"], "model_type": "bert",
    "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 48, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 32, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
    "position_embedding_type": "absolute", "use_cache": True, "classifier_dropout": None,
    "torch_dtype": "float32", "transformers_version": "4.44.0",
}

if __name__ == "__main__":
    gen = torch.Generator().manual_seed(21)
    w = make_weights(bert, gen)
    lengths = [9, 6]
    ids = torch.randint(1, bert["vocab_size"], (2, 9), generator=gen)
    types = torch.zeros(2, 9, dtype=torch.int64)
    types[:, 4:] = 1                                      # a second segment in each sequence
    mask = torch.zeros(2, 9, dtype=torch.int64)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = bert["pad_token_id"]
        types[i, n:] = 0
    with torch.no_grad():
        hidden, logits = forward(bert, w, ids, types, mask)
    d = os.path.join(HERE, "bert")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(bert, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"input_ids": ids.tolist(), "token_type_ids": types.tolist(), "lengths": lengths,
                   "hidden": [round(float(x), 7) for x in hidden.flatten()],
                   "logits": [round(float(x), 7) for x in logits.flatten()]}, f)
    print("bert: wrote", os.path.normpath(d))
