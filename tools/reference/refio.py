"""Shared by the reference scripts: writing safetensors files by hand from the format's
specification (u64 little-endian header length, JSON header of dtype / shape / data_offsets
padded with spaces to 8 bytes, then the raw little-endian data), so no safetensors package is needed."""
import json
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
