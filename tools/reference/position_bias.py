#!/usr/bin/python3
"""Writes tests/Encore.Tensors.Tests/Fixtures/position_bias.json: T5 relative-position buckets
(HF T5Attention._relative_position_bucket, restated here in torch) for encoder and decoder
settings, and ALiBi slopes (the ALiBi paper's reference get_slopes).

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/position_bias.py
"""
import json
import math
import os

import torch

from refio import t5_relative_position_bucket as bucket



def slopes(n):
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + slopes(2 * closest)[0::2][: n - closest]


rel = torch.arange(-300, 301)
cases = []
for bidirectional in (True, False):
    for nb, md in ((32, 128), (16, 64), (8, 20)):
        cases.append({"bidirectional": bidirectional, "num_buckets": nb, "max_distance": md,
                      "relative": rel.tolist(), "buckets": bucket(rel, bidirectional, nb, md).tolist()})
out = os.path.join(os.path.dirname(__file__), "../../tests/Encore.Tensors.Tests/Fixtures/position_bias.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"t5": cases, "alibi": {str(n): slopes(n) for n in (1, 2, 3, 4, 6, 8, 12, 16, 20)}}, f)
print("wrote", os.path.normpath(out))
