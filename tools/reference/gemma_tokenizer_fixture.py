#!/usr/bin/python3
"""Writes a tiny Gemma-style tokenizer under tests/Encore.Formats.Tests/Fixtures/tokenizers/gemma/ and its
expected ids from the sentencepiece library itself (Debian python3-sentencepiece).

Gemma's tokenizer.model is a SentencePiece BPE model laid out as: pad=0, eos=1, bos=2, unk=3, byte
fallback, digits split, no dummy prefix and no whitespace folding (the identity normalizer), with
user-defined pieces such as <start_of_turn> and <end_of_turn> matched whole in the text;
tokenizer_config.json adds <bos> and no <eos>.

Run: /usr/bin/python3 tools/reference/gemma_tokenizer_fixture.py
"""
import io
import json
import os

import sentencepiece as spm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures/tokenizers/gemma")

TRAIN = """<start_of_turn>user
What is the capital of France?<end_of_turn>
<start_of_turn>model
The capital of France is Paris.<end_of_turn>
A small model can translate short sentences quickly, and it runs on a plain CPU.
Encoder-decoder models read the whole input once, then write the answer token by token.
Numbers like 12345 and 2026 appear in dates, prices ($19.99) and versions (v1.2.3).
Le renard brun rapide saute par-dessus le chien paresseux. Où est la gare? Très bien, merci.
Der schnelle braune Fuchs springt über den faulen Hund.   Spaces   and	tabs stay as they are.
""".splitlines()

TESTS = [
    "Hello world",
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "  leading spaces and  double  spaces",
    "digits 12345 and 2026",
    "bytes: ☃ Ω 😀 中文",
    "tabs\tand\nnewlines",
    "Très bien, merci.",
    "",
    " ",
    "<end_of_turn><start_of_turn>",
]

model = io.BytesIO()
spm.SentencePieceTrainer.train(
    sentence_iterator=iter(TRAIN), model_writer=model, num_threads=1, minloglevel=2,
    model_type="bpe", vocab_size=420, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
    pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
    user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], byte_fallback=True, split_digits=True,
    add_dummy_prefix=False, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
    normalization_rule_name="identity", character_coverage=1.0, hard_vocab_limit=False)
sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "tokenizer.model"), "wb") as f:
    f.write(model.getvalue())
with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
    json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<bos>", "eos_token": "<eos>",
               "pad_token": "<pad>", "unk_token": "<unk>", "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
               "tokenizer_class": "GemmaTokenizer"}, f, indent=1)
cases = [{"text": t, "ids": sp.encode(t), "decoded": sp.decode(sp.encode(t))} for t in TESTS]
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump({"vocab_size": sp.get_piece_size(), "start_of_turn": sp.piece_to_id("<start_of_turn>"),
               "end_of_turn": sp.piece_to_id("<end_of_turn>"), "cases": cases}, f, ensure_ascii=False, indent=1)
print("vocab", sp.get_piece_size(), [c["ids"] for c in cases[:2]])
