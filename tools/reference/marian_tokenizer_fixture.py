#!/usr/bin/python3
"""Writes tests/Encore.Formats.Tests/Fixtures/tokenizers/marian/: a tiny Marian tokenizer pair laid out
as the Helsinki-NLP opus-mt repositories ship it, and the ids and texts Encore's MarianTokenizer must give.

- source.spm, target.spm: two tiny unigram SentencePiece models (English-like and German-like text),
  trained here by the sentencepiece library (Debian python3-sentencepiece) with identity normalization;
- vocab.json: the shared vocabulary, as convert_marian_to_pytorch.py builds it: every piece of both
  models (source first), then <pad>, so its ids differ from either model's own piece ids; then two
  language-code tokens (>>de<<, >>fr<<) as multi-target opus-mt models (en-mul) have;
- config.json: the ids of the model (eos "</s>", unk "<unk>", pad = decoder start);
- expected.json: MarianTokenizer restated after transformers' tokenization_marian.py:
    encode: a language code >>…<< matched at the start of the text (re.compile(">>.+<<"), greedy) is
            one token, every match of it is removed from the text (remove_language_code), the rest is
            split into source.spm pieces (spm.encode(text, out_type=str)), each mapped through vocab.json
            (a piece or code missing from it becomes <unk>), then </s> appended;
    decode: ids → vocab.json tokens → target.spm's decode_pieces for runs of ordinary tokens, special
            tokens (</s>, <pad>, <unk>) dropped (skip_special_tokens).

Run: /usr/bin/python3 tools/reference/marian_tokenizer_fixture.py
"""
import io
import json
import os
import re

import sentencepiece as spm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures/tokenizers/marian")
SOURCE = ["the quick brown fox jumps over the lazy dog", "a package of python tools for the archive",
          "hello world from the source side", "translate this sentence into german please"]
TARGET = ["der schnelle braune fuchs springt über den faulen hund", "ein paket mit werkzeugen für das archiv",
          "hallo welt von der zielseite", "übersetze diesen satz bitte ins deutsche"]
SPECIAL = ["</s>", "<unk>", "<pad>"]


def train(lines):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines * 4), model_writer=model, vocab_size=60,
                                   model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                                   normalization_rule_name="identity", bos_id=-1, eos_id=1, unk_id=0)
    return model.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    src_bytes, tgt_bytes = train(SOURCE), train(TARGET)
    src = spm.SentencePieceProcessor(model_proto=src_bytes)
    tgt = spm.SentencePieceProcessor(model_proto=tgt_bytes)
    vocab = {}
    for token in ["</s>", "<unk>"] + [src.id_to_piece(i) for i in range(src.get_piece_size())] + \
                 [tgt.id_to_piece(i) for i in range(tgt.get_piece_size())]:
        vocab.setdefault(token, len(vocab))
    vocab["<pad>"] = len(vocab)
    vocab[">>de<<"] = len(vocab)
    vocab[">>fr<<"] = len(vocab)
    with open(os.path.join(OUT, "source.spm"), "wb") as f:
        f.write(src_bytes)
    with open(os.path.join(OUT, "target.spm"), "wb") as f:
        f.write(tgt_bytes)
    with open(os.path.join(OUT, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=1)
    config = {"model_type": "marian", "vocab_size": len(vocab), "eos_token_id": vocab["</s>"],
              "pad_token_id": vocab["<pad>"], "decoder_start_token_id": vocab["<pad>"]}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    language_code = re.compile(">>.+<<")

    def encode(text):
        match = language_code.match(text)
        code = [match.group(0)] if match else []
        pieces = code + src.encode(language_code.sub("", text), out_type=str)
        return [vocab.get(p, vocab["<unk>"]) for p in pieces] + [vocab["</s>"]]

    inverse = {i: t for t, i in vocab.items()}

    def decode(ids):
        tokens = [inverse[i] for i in ids if inverse[i] not in SPECIAL]
        return tgt.decode_pieces(tokens)

    texts = ["the quick archive", "hello source world", "python zebra!", "  spaced   out  ", "",
             ">>de<< the quick archive", ">>fr<<hello world", ">>xx<< an unknown code", "the >>de<< code inside",
             ">>de<< two >>fr<< codes", ">>de<<"]
    # Target-side ids: target pieces of German text, some source-only pieces, and specials to skip.
    target_texts = ["der schnelle fuchs", "hallo welt", "über das archiv"]
    target_ids = [[vocab[p] for p in tgt.encode(t, out_type=str)] + [vocab["</s>"]] for t in target_texts]
    target_ids.append([vocab["<pad>"]] + [vocab[p] for p in tgt.encode("ein paket", out_type=str)] + [vocab["</s>"], vocab["<pad>"]])
    only_source = [p for p in (src.id_to_piece(i) for i in range(3, src.get_piece_size())) if tgt.piece_to_id(p) == tgt.unk_id()]
    target_ids.append([vocab[p] for p in tgt.encode("hallo", out_type=str)] + [vocab[only_source[0]]])
    expected = {
        "encode": [{"text": t, "ids": encode(t)} for t in texts],
        "decode": [{"ids": ids, "text": decode(ids)} for ids in target_ids],
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print(f"wrote {os.path.normpath(OUT)}: {len(vocab)} tokens; {expected}")


if __name__ == "__main__":
    main()
