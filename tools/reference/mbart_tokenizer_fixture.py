#!/usr/bin/python3
"""Writes tests/Encore.Formats.Tests/Fixtures/tokenizers/{mbart,mbart50}/: a tiny mBART tokenizer laid out as the
facebook/mbart-* repositories ship it, and the ids and texts Encore's MBartTokenizer must give.

- sentencepiece.bpe.model: a tiny BPE SentencePiece model trained here by the sentencepiece library (Debian
  python3-sentencepiece) with fairseq's piece ids (<unk> 0, <s> 1, </s> 2);
- tokenizer_config.json: tokenizer_class MBartTokenizer (mbart) or MBart50Tokenizer (mbart50), src_lang, tgt_lang;
- config.json: model_type mbart, decoder_start_token_id 2;
- expected.json: tokenization_mbart.py / tokenization_mbart50.py restated:
    ids: <s> 0, <pad> 1, </s> 2, <unk> 3; piece p → p + 1 (PieceToId 0, the unknown piece, → <unk>);
         language code i → pieces + 1 + i (FAIRSEQ_LANGUAGE_CODES, 25 or 52); <mask> last;
    encode: split the text on the special tokens (codes, <s>, <pad>, </s>, <unk>, <mask>; <mask> is
            AddedToken(lstrip=True), so the whitespace before it goes), sp.encode(chunk, out_type=str) per
            chunk, then mBART: X </s> src_lang; mBART-50: src_lang X </s>;
    decode: special tokens dropped (skip_special_tokens), pieces joined, "▁" → " ", stripped.

Run: /usr/bin/python3 tools/reference/mbart_tokenizer_fixture.py
"""
import io
import json
import os

import sentencepiece as spm

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures/tokenizers")
MBART = ["ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT", "ja_XX", "kk_KZ",
         "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN"]
MBART50 = MBART + ["af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL", "hr_HR", "id_ID", "ka_GE", "km_KH", "mk_MK", "ml_IN",
                   "mn_MN", "mr_IN", "pl_PL", "ps_AF", "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN", "th_TH", "tl_XX", "uk_UA",
                   "ur_PK", "xh_ZA", "gl_ES", "sl_SI"]
CORPUS = ["the quick brown fox jumps over the lazy dog", "un paquet d'outils pour l'archive",
          "der schnelle braune fuchs springt", "a library for the haskell programming language",
          "translate this sentence into romanian please", "acest pachet conține fișierele de dezvoltare"]


def train():
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 4), model_writer=model, vocab_size=120,
                                   model_type="bpe", character_coverage=1.0, hard_vocab_limit=False,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    return model.getvalue()


def build(name, tokenizer_class, languages, src_lang, tgt_lang, sp_bytes):
    sp = spm.SentencePieceProcessor(model_proto=sp_bytes)
    fifty = tokenizer_class.startswith("MBart50")
    size = sp.get_piece_size()
    code_id = {c: size + 1 + i for i, c in enumerate(languages)}
    mask = size + 1 + len(languages)
    special = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": mask, **code_id}

    def piece_id(p):
        i = sp.piece_to_id(p)
        return i + 1 if i else 3

    def split(text):
        # The added-token split: earliest special token, the longest where several start at one place.
        out, start = [], 0
        while True:
            hits = [(text.find(t, start), -len(t), t) for t in special if text.find(t, start) >= 0]
            if not hits:
                out.append((text[start:], None))
                return out
            at, _, token = min(hits)
            chunk = text[start:at]
            if token == "<mask>":
                chunk = chunk.rstrip()
            out.append((chunk, token))
            start = at + len(token)

    def encode(text, lang):
        ids = []
        for chunk, token in split(text):
            if chunk:
                ids += [piece_id(p) for p in sp.encode(chunk, out_type=str)]
            if token is not None:
                ids.append(special[token])
        return [code_id[lang]] + ids + [2] if fifty else ids + [2, code_id[lang]]

    inverse = {v: k for k, v in special.items()}

    def decode(ids):
        pieces = [sp.id_to_piece(i - 1) for i in ids if i not in inverse]
        return "".join(pieces).replace("\u2581", " ").strip()

    texts = ["the quick archive", "un paquet pour l'archive", "haskell zebra!", "  spaced   out  ", "",
             "the <mask> fox", "ro_RO a code in the text", "fox</s>dog", "q\u00e9x \u6f22"]
    target = [encode("acest pachet conține", tgt_lang), [2, code_id[tgt_lang]] + encode("the lazy dog", src_lang)[1:-1] + [2, 1, 1]]
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "sentencepiece.bpe.model"), "wb") as f:
        f.write(sp_bytes)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": tokenizer_class, "src_lang": src_lang, "tgt_lang": tgt_lang}, f, indent=1)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "mbart", "vocab_size": mask + 1, "decoder_start_token_id": 2, "pad_token_id": 1,
                   "bos_token_id": 0, "eos_token_id": 2}, f, indent=1)
    expected = {
        "vocab_size": mask + 1, "mask": mask, "codes": {c: code_id[c] for c in (src_lang, tgt_lang)},
        "encode": [{"text": t, "ids": encode(t, src_lang)} for t in texts],
        "encode_as": [{"text": "the quick archive", "lang": tgt_lang, "ids": encode("the quick archive", tgt_lang)}],
        "decode": [{"ids": ids, "text": decode(ids)} for ids in target],
    }
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print(f"wrote {os.path.normpath(d)}: {mask + 1} ids; {expected['encode'][:3]}")


def main():
    sp_bytes = train()
    build("mbart", "MBartTokenizer", MBART, "en_XX", "ro_RO", sp_bytes)
    build("mbart50", "MBart50Tokenizer", MBART50, "fr_XX", "ro_RO", sp_bytes)


if __name__ == "__main__":
    main()
