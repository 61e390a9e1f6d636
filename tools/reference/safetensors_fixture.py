#!/usr/bin/python3
"""Writes tests/Encore.Formats.Tests/Fixtures/small.safetensors by hand from the format's
specification (8-byte little-endian header length, JSON header, raw little-endian data), with
tensor bytes produced by torch, and small.json with the expected values.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/safetensors_fixture.py
"""
import json
import os
import struct

import torch

torch.manual_seed(1)
tensors = {
    "encoder.embed.weight": torch.randn(3, 5),
    "decoder.norm.weight": torch.randn(4).to(torch.float16),
    "lm_head.weight": torch.randn(2, 3).to(torch.bfloat16),
    "positions": torch.tensor([0, -1, 7, 2**31 - 1], dtype=torch.int64),
    "mask": torch.tensor([True, False, True]),
    "scale": torch.tensor([1.5, -2.25], dtype=torch.float64),
}
names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
         torch.bool: "BOOL", torch.float64: "F64"}

header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
for name, t in tensors.items():
    # bfloat16 has no numpy dtype: take its bits through int16.
    raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
    header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
here = os.path.join(os.path.dirname(__file__), "../../tests/Encore.Formats.Tests/Fixtures")
with open(os.path.join(here, "small.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
with open(os.path.join(here, "small.json"), "w") as f:
    json.dump({k: {"shape": list(t.shape), "values": (t.float() if t.is_floating_point() else t.long()).flatten().tolist()}
               for k, t in tensors.items()}, f)
print("wrote", os.path.normpath(here))
