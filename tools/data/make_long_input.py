#!/usr/bin/python3
"""Builds data/long_input/{train,validation}.jsonl: a long context of 20-60 short facts
("The key of Alice is red.") in which one fact answers a short question; the target is one word.
Long input, short output: the shape where an encoder-decoder reads the context once and decodes a
few steps (Return of the Encoder, arXiv 2501.16273). The same generator is
src/Encore.Training/Data/LongInputTask.cs; both draw from SplitMix64 in the same order, so
LongInputTask.Generate(count, seed) reproduces these files line for line.

Run from the repository root: /usr/bin/python3 tools/data/make_long_input.py
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splitmix import SplitMix64  # noqa: E402

NAMES = [
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
    "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Walter", "Xena", "Yusuf", "Zoe", "Amir",
    "Bella", "Chen", "Dmitri", "Elena", "Farah", "Goran", "Hana", "Igor", "Jonas", "Kira", "Lars", "Mina",
    "Nora", "Oscar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Ugo", "Vera", "Wen", "Yara", "Zane",
]
OBJECTS = ["key", "car", "hat", "book", "cup", "ball", "door", "lamp", "coat", "bike", "kite", "scarf"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown", "gray", "gold"]


def generate(count, seed, min_facts=20, max_facts=60):
    rng = SplitMix64(seed)
    pool = len(NAMES) * len(OBJECTS)
    for _ in range(count):
        n = min_facts + rng.next_int(max_facts - min_facts + 1)
        cells = list(range(pool))
        for i in range(n):  # partial Fisher-Yates: n distinct (name, object) cells
            j = i + rng.next_int(pool - i)
            cells[i], cells[j] = cells[j], cells[i]
        facts = []
        for i in range(n):
            name, obj = NAMES[cells[i] // len(OBJECTS)], OBJECTS[cells[i] % len(OBJECTS)]
            facts.append((name, obj, COLORS[rng.next_int(len(COLORS))]))
        q = rng.next_int(n)
        name, obj, color = facts[q]
        context = " ".join(f"The {o} of {p} is {c}." for p, o, c in facts)
        yield {"source": f"context: {context} question: What color is the {obj} of {name}?", "target": color}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="data/long_input")
    ap.add_argument("--train", type=int, default=700)
    ap.add_argument("--validation", type=int, default=100)
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--validation-seed", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for split, count, seed in (("train", args.train, args.train_seed), ("validation", args.validation, args.validation_seed)):
        with open(os.path.join(args.out, split + ".jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for r in generate(count, seed):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {args.train} train (seed {args.train_seed}) and {args.validation} validation (seed {args.validation_seed}) examples to {args.out}")


if __name__ == "__main__":
    main()
