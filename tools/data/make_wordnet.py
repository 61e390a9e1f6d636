#!/usr/bin/python3
"""Builds data/wordnet/{train,validation}.jsonl from WordNet 3.0 (Debian package wordnet-base:
/usr/share/wordnet/data.{noun,verb,adj,adv}). Each synset gives one pair
{"source": "define: <first lemma> (<part of speech>)", "target": "<gloss definition>"}; the gloss's
quoted usage examples (after the first '; "') are dropped. A seeded sample keeps the files small.

Run from the repository root: /usr/bin/python3 tools/data/make_wordnet.py
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splitmix import SplitMix64  # noqa: E402

POS = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}


def read_synsets(path, pos):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the license header lines
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            word_count = int(fields[3], 16)
            lemma = fields[4]
            if word_count < 1:
                continue
            # Adjective lemmas may carry a syntactic marker, e.g. "galore(ip)".
            if "(" in lemma:
                lemma = lemma[: lemma.index("(")]
            lemma = lemma.replace("_", " ")
            definition = gloss.strip().split('; "')[0].strip().rstrip(";").strip()
            if not definition:
                continue
            pairs.append({"source": f"define: {lemma} ({pos})", "target": definition})
    return pairs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--copyright", default="/usr/share/doc/wordnet-base/copyright")
    ap.add_argument("--out", default="data/wordnet")
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--validation", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20061)
    args = ap.parse_args()

    pairs = []
    for name, pos in POS.items():  # fixed order: the sample depends only on the seed
        pairs.extend(read_synsets(os.path.join(args.wordnet, "data." + name), pos))
    rng = SplitMix64(args.seed)
    rng.shuffle(pairs)
    if args.train + args.validation > len(pairs):
        sys.exit(f"only {len(pairs)} synsets")
    os.makedirs(args.out, exist_ok=True)
    splits = {"validation": pairs[: args.validation], "train": pairs[args.validation : args.validation + args.train]}
    for split, rows in splits.items():
        with open(os.path.join(args.out, split + ".jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    shutil.copyfile(args.copyright, os.path.join(args.out, "LICENSE"))
    print(f"{len(pairs)} synsets; wrote {args.train} train and {args.validation} validation pairs to {args.out}")


if __name__ == "__main__":
    main()
