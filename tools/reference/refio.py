"""Shared by the reference scripts: writing safetensors files by hand from the format's
specification (u64 little-endian header length, JSON header of dtype / shape / data_offsets
padded with spaces to 8 bytes, then the raw little-endian data), so no safetensors package is needed."""
import json
import math
import struct

import torch


def write_safetensors(path, tensors):
    """Writes {name: tensor} as F32, in the dict's order, with {"format": "pt"} metadata."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def t5_relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """HF modeling_t5.py T5Attention._relative_position_bucket, restated (binary32 log, as torch computes it)."""
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    if_large = max_exact + (
        torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return relative_buckets + torch.where(is_small, relative_position, if_large)


def greedy_seq2seq(encode, decode, w, cfg, ids, steps):
    """Greedy decoding of an encoder–decoder by full recomputation of the prefix at every step (simple
    and independent of any cache). Returns the new ids, the logits of every step, and the smallest gap
    between the top two logits (fixtures need it well above float noise)."""
    memory = encode(w, cfg, ids)
    out, logits_per_step, margins = [cfg["decoder_start_token_id"]], [], []
    for _ in range(steps):
        logits = decode(w, cfg, memory, torch.tensor([out]))[0, -1]
        top = torch.topk(logits, 2).values
        margins.append((top[0] - top[1]).item())
        logits_per_step.append(logits)
        out.append(int(logits.argmax()))
    return out[1:], torch.stack(logits_per_step), min(margins)
