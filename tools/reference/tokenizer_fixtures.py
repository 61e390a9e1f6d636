#!/usr/bin/python3
"""Writes the tokenizer fixtures under tests/Encore.Formats.Tests/Fixtures/tokenizers/.

Independent references for Encore's tokenizers:
- t5/spiece.model: a tiny unigram SentencePiece model laid out like T5's (pad=0, eos=1, unk=2,
  no bos, no byte fallback) with tokenizer_config.json declaring 5 <extra_id_N> sentinels.
- llama/tokenizer.model: a tiny BPE SentencePiece model laid out like Llama's (unk=0, bos=1,
  eos=2, byte_fallback, split_digits).
  Expected ids for both come from the sentencepiece library itself (Debian python3-sentencepiece).
- gpt2/tokenizer.json (merges as "a b" strings, ByteLevel pre-tokenizer with GPT-2's regex),
  gpt2-files/vocab.json + merges.txt (the same model in the older layout), and
  qwen2/tokenizer.json (merges as [a, b] pairs, Split with Qwen2's regex, then ByteLevel):
  byte-level BPE models whose merges are learnt here by a plain Python BPE trainer, with
  expected ids from a plain Python GPT-2 byte-level BPE encoder and hand-written pre-tokenizer
  scanners (no regex engine shared with .NET).
- bert/vocab.txt: a tiny WordPiece vocabulary, with expected ids from a plain Python BERT
  basic tokenizer + greedy longest-match WordPiece.
- bpe_trainer.json: a corpus and the merges Encore's BpeTrainer must learn from it (the Python
  trainer below uses the same rules: most frequent pair, ties to the smallest (left id, right id)).

Run: /usr/bin/python3 tools/reference/tokenizer_fixtures.py
"""
import collections
import io
import json
import os
import unicodedata

import sentencepiece as spm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/Encore.Formats.Tests/Fixtures/tokenizers")

CORPUS = """The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.
A small model can translate short sentences quickly, and it runs on a plain CPU.
Encoder-decoder models read the whole input once, then write the answer token by token.
Numbers like 12345 and 2026 appear in dates, prices ($19.99) and versions (v1.2.3).
Le renard brun rapide saute par-dessus le chien paresseux. Où est la gare? Très bien, merci.
Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus München, schön hier!
El rápido zorro marrón salta sobre el perro perezoso. ¿Dónde está la estación? Mañana.
Быстрая коричневая лиса прыгает через ленивую собаку. Привет, как дела?
敏捷的棕色狐狸跳过了懒狗。我们今天学习机器翻译。你好，世界！
素早い茶色の狐がのろまな犬を飛び越える。こんにちは、世界。
빠른 갈색 여우가 게으른 개를 뛰어넘는다. 안녕하세요.
Emoji are text too: 🙂 😀 🚀 👍🏽 and flags 🇫🇷 travel as bytes.
"""
CORPUS_LINES = [l for l in CORPUS.split("\n") if l]
# Repeated so the trainers see enough data; the lines stay the same.
TRAIN_LINES = CORPUS_LINES * 8

TESTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and   inner   spaces ",
    "tabs\tand\nnewlines\n\n",
    "café naïve résumé Übergröße",
    "¿Dónde está la estación?",
    "敏捷的棕色狐狸",
    "こんにちは、世界。",
    "Привет, мир!",
    "emoji 🙂🚀👍🏽 end",
    "mixed: English, 中文, русский, 😀 and 12345",
    "rare: ∮ Ω ƒ ǅ ☃ 𝔘",
    "",
    " ",
    "'s 're I'll DON'T",
    "ＦＵＬＬ ｗｉｄｔｈ １２３ and ﬁne ① items",
    "decomposed e\u0301te\u0301 vs \u00e9t\u00e9, ideographic\u3000space",
]


def write(path, data):
    path = os.path.join(OUT, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": "\n"})) as f:
        f.write(data)


def write_json(path, obj):
    write(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


# ---------------------------------------------------------------- SentencePiece
def train_spm(**kw):
    model = io.BytesIO()
    kw.setdefault("normalization_rule_name", "identity")
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TRAIN_LINES), model_writer=model,
                                   num_threads=1, character_coverage=0.98, minloglevel=2, **kw)
    return model.getvalue()


def normalization_rules():
    """A small NFKC-like rule table, compiled by sentencepiece into the model's precompiled_charsmap
    (T5's nmt_nfkc table is ~240 KB; this one exercises the same mechanism in a few hundred bytes):
    full-width ASCII, the ﬁ ligature, circled one, ideographic space, and e + combining acute."""
    rows = [(f"{0xFF01 + i:X}", f"{0x21 + i:X}") for i in range(0x5E)]
    rows += [("FB01", "66 69"), ("2460", "31"), ("3000", "20"), ("65 301", "E9")]
    path = os.path.join(OUT, "..", "..", "obj", "t5_rules.tsv")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"{a}\t{b}\n" for a, b in rows))
    return path


def spm_cases(model):
    sp = spm.SentencePieceProcessor(model_proto=model)
    return [{"text": t, "ids": sp.encode(t), "decoded": sp.decode(sp.encode(t))} for t in TESTS], sp


t5 = train_spm(model_type="unigram", vocab_size=220, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
               hard_vocab_limit=False, normalization_rule_name=None, normalization_rule_tsv=normalization_rules())
t5_cases, t5_sp = spm_cases(t5)
extra = 5
t5_vocab = t5_sp.get_piece_size() + extra
write("t5/spiece.model", t5)
sentinels = [f"<extra_id_{i}>" for i in range(extra)]
write_json("t5/tokenizer_config.json", {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                                        "extra_ids": extra, "additional_special_tokens": sentinels,
                                        "model_max_length": 512, "tokenizer_class": "T5Tokenizer"})
write_json("t5/special_tokens_map.json", {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                                          "additional_special_tokens": sentinels})
write_json("t5/config.json", {"model_type": "t5", "vocab_size": t5_vocab, "pad_token_id": 0, "eos_token_id": 1,
                              "decoder_start_token_id": 0})

llama = train_spm(model_type="bpe", vocab_size=420, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                  byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
                  remove_extra_whitespaces=False)
llama_cases, llama_sp = spm_cases(llama)
write("llama/tokenizer.model", llama)
write_json("llama/tokenizer_config.json", {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                                           "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
                                           "tokenizer_class": "LlamaTokenizer"})
write_json("llama/config.json", {"model_type": "llama", "vocab_size": llama_sp.get_piece_size(),
                                 "bos_token_id": 1, "eos_token_id": 2})


# ---------------------------------------------------------------- byte-level BPE (GPT-2 / Qwen2)
def bytes_to_unicode():
    # GPT-2 encoder.py: printable bytes map to themselves, the rest to 256 + n in byte order.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}


def is_letter(c): return unicodedata.category(c)[0] == "L"
def is_number(c): return unicodedata.category(c)[0] == "N"
def is_space(c): return c.isspace()


def ws_run(t, i):
    j = i
    while j < len(t) and is_space(t[j]):
        j += 1
    return j


def run(t, i, pred):
    while i < len(t) and pred(t[i]):
        i += 1
    return i


def other(c): return not (is_space(c) or is_letter(c) or is_number(c))


def space_tail(t, i):
    # \s+(?!\S)|\s+ : a whitespace run keeps its last space for the next word unless it ends the text.
    j = ws_run(t, i)
    if j == len(t) or j - i == 1:
        return j
    return j - 1


def gpt2_split(t):
    """GPT-2's pattern 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+."""
    out, i = [], 0
    while i < len(t):
        j = None
        for c in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if t.startswith(c, i):
                j = i + len(c)
                break
        if j is None:
            k = i + 1 if t[i] == " " and i + 1 < len(t) else i
            for pred in (is_letter, is_number, other):
                if pred(t[k]):
                    j = run(t, k, pred)
                    break
        if j is None:
            j = space_tail(t, i)
        out.append(t[i:j])
        i = j
    return out


QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def qwen2_split(t):
    out, i = [], 0
    while i < len(t):
        j = None
        low = t[i:i + 3].lower()
        for c in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if low.startswith(c):
                j = i + len(c)
                break
        if j is None and (is_letter(t[i]) or (t[i] not in "\r\n" and not is_number(t[i]) and i + 1 < len(t) and is_letter(t[i + 1]))):
            j = run(t, i + 1, is_letter)
        if j is None and is_number(t[i]):
            j = i + 1
        if j is None:
            k = i + 1 if t[i] == " " and i + 1 < len(t) else i
            if other(t[k]):
                j = run(t, run(t, k, other), lambda c: c in "\r\n")
        if j is None:
            e = ws_run(t, i)
            nl = [k for k in range(i, e) if t[k] in "\r\n"]
            j = nl[-1] + 1 if nl else space_tail(t, i)
        out.append(t[i:j])
        i = j
    return out


def bpe_word(word, ranks):
    # GPT-2 encoder.py bpe(): repeatedly merge the lowest-ranked adjacent pair.
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), k) for k, (a, b) in enumerate(zip(parts, parts[1:]))]
        r, k = min(pairs)
        if r == 1 << 30:
            break
        a, b = parts[k], parts[k + 1]
        merged, m = [], 0
        while m < len(parts):
            if m < len(parts) - 1 and parts[m] == a and parts[m + 1] == b:
                merged.append(a + b)
                m += 2
            else:
                merged.append(parts[m])
                m += 1
        parts = merged
    return parts


def train_bpe(lines, vocab_size, split, first_id):
    """Plain BPE training over byte-level words: merge the most frequent pair; ties go to the
    smallest (left id, right id), ids being the symbols' vocabulary ids."""
    ids = {B2U[b]: first_id + k for k, b in enumerate(sorted(B2U, key=lambda b: ord(B2U[b])))}
    words = collections.Counter()
    for line in lines:
        for w in split(line):
            words[tuple(B2U[b] for b in w.encode("utf-8"))] += 1
    merges = []
    while first_id + len(ids) < vocab_size:
        counts = collections.Counter()
        for w, f in words.items():
            for p in zip(w, w[1:]):
                counts[p] += f
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], ids[p[0]], ids[p[1]]))
        new = best[0] + best[1]
        merges.append(best)
        if new not in ids:
            ids[new] = first_id + len(ids)
        nw = collections.Counter()
        for w, f in words.items():
            out, m = [], 0
            while m < len(w):
                if m < len(w) - 1 and (w[m], w[m + 1]) == best:
                    out.append(new)
                    m += 2
                else:
                    out.append(w[m])
                    m += 1
            nw[tuple(out)] += f
        words = nw
    return ids, merges


def bpe_encode(text, ids, merges, split, specials):
    ranks = {m: r for r, m in enumerate(merges)}
    out = []
    # Added tokens are cut out of the text before pre-tokenization (HF tokenizers' AddedVocabulary).
    pieces = [text]
    for s in specials:
        pieces = [x for p in pieces for x in _split_keep(p, s)]
    for p in pieces:
        if p in specials:
            out.append(specials[p])
            continue
        for w in split(p):
            out.extend(ids[t] for t in bpe_word("".join(B2U[b] for b in w.encode("utf-8")), ranks))
    return out


def _split_keep(p, s):
    if p == s:
        return [p]
    parts = p.split(s)
    res = []
    for k, x in enumerate(parts):
        if k:
            res.append(s)
        if x:
            res.append(x)
    return res


def byte_level_fixture(name, split, pre_tokenizer, normalizer, pairs, specials_names, with_files=False):
    specials = {}
    ids, merges = train_bpe(TRAIN_LINES, 256 + 180, split, 0)
    for s in specials_names:
        specials[s] = len(ids)
        ids[s] = len(ids)
    vocab = {k: v for k, v in ids.items() if k not in specials}
    added = [{"id": specials[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s in specials_names]
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": [list(m) for m in merges] if pairs else [f"{a} {b}" for a, b in merges]},
    }
    write_json(f"{name}/tokenizer.json", tj)
    eos = specials_names[0]
    write_json(f"{name}/tokenizer_config.json", {"eos_token": eos, "bos_token": None if name == "qwen2" else eos,
                                                 "unk_token": None if name == "qwen2" else eos,
                                                 "pad_token": eos if name == "qwen2" else None,
                                                 "add_prefix_space": False})
    if with_files:
        write_json(f"{name}-files/vocab.json", ids)
        write(f"{name}-files/merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        write_json(f"{name}-files/special_tokens_map.json", {"eos_token": eos, "bos_token": eos, "unk_token": eos})
    cases = []
    for t in TESTS + [f"hi{specials_names[-1]} there{eos}", eos]:
        norm = unicodedata.normalize("NFC", t) if normalizer else t
        cases.append({"text": t, "ids": bpe_encode(norm, ids, merges, split, specials)})
    return cases, len(ids)


gpt2_cases, gpt2_vocab = byte_level_fixture(
    "gpt2", gpt2_split, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    None, False, ["<|endoftext|>"], with_files=True)
qwen2_cases, qwen2_vocab = byte_level_fixture(
    "qwen2", qwen2_split,
    {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
    {"type": "NFC"}, True, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])

# The C# trainer's reference: the same trainer over GPT-2 pre-tokenized words, ids after one special.
trainer_corpus = CORPUS_LINES
trainer_ids, trainer_merges = train_bpe(trainer_corpus, 1 + 256 + 120, gpt2_split, 1)
write_json("bpe_trainer.json", {"corpus": trainer_corpus, "special_tokens": ["<|endoftext|>"],
                                "vocab_size": 1 + 256 + 120, "merges": [f"{a} {b}" for a, b in trainer_merges]})


# ---------------------------------------------------------------- WordPiece (BERT)
def bert_basic(text, lower):
    # BERT tokenization.py BasicTokenizer: clean, isolate CJK, lowercase + strip accents, split punctuation.
    out = []
    text = "".join(" " if c.isspace() else c for c in text if not (ord(c) == 0 or ord(c) == 0xFFFD or unicodedata.category(c).startswith("C")) or c in "\t\n\r")
    text = "".join(f" {c} " if 0x4E00 <= ord(c) <= 0x9FFF or 0x3400 <= ord(c) <= 0x4DBF else c for c in text)
    for w in text.split():
        if lower:
            w = "".join(c for c in unicodedata.normalize("NFD", w.lower()) if unicodedata.category(c) != "Mn")
        cur = ""
        for c in w:
            cp = ord(c)
            if (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126) or unicodedata.category(c).startswith("P"):
                if cur:
                    out.append(cur)
                out.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            out.append(cur)
    return out


def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    out, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            s = word[start:end] if start == 0 else "##" + word[start:end]
            if s in vocab:
                cur = s
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        out.append(cur)
        start = end
    return out


bert_vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'", "(", ")", "$",
              "the", "quick", "brown", "fox", "dog", "lazy", "jump", "##s", "##ed", "##ing", "over", "run",
              "cafe", "naive", "resume", "hello", "world", "un", "##believ", "##able", "a", "b", "c",
              "##a", "##b", "##c", "1", "2", "3", "##1", "##2", "##3", "敏", "捷", "的", "狐", "狸", "don", "t"]
bert_index = {t: k for k, t in enumerate(bert_vocab)}
write("bert/vocab.txt", "".join(t + "\n" for t in bert_vocab))
write_json("bert/tokenizer_config.json", {"do_lower_case": True, "cls_token": "[CLS]", "sep_token": "[SEP]",
                                          "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
                                          "tokenizer_class": "BertTokenizer"})
bert_tests = ["The quick brown fox jumped over the lazy dogs.", "Hello, World!", "Café naïve RÉSUMÉ",
              "unbelievable running", "敏捷的狐狸", "abc 123 cab", "xyz", "Don't ($3)", "", "a\tb\nc",
              "a+b=c^a~b|c", "a\u200bb\ue000c\U0001F600a", "Ａ！b「c」—a…", "hello\u00a0world\u3000a", "a\ue000b c\u200bb"]
bert_cases = [{"text": t, "ids": [bert_index[p] for w in bert_basic(t, True) for p in wordpiece(w, bert_index)]}
              for t in bert_tests]

norm_texts = ["cafe\u0301 e\u0301te\u0301", "Vie\u0323\u0302t Nam, vi\u1EC7t", "a\u0301\u0323 q\u0307\u0323 \u1E0B\u0323",
              "\u212B \u2126 \u212A \uF900 \u0344 \u0F73", "\u1100\u1161\u11A8 \uD55C\uAE00", "x\u0300\u0315\u0301 \u00C5\u0327",
              "\U0001D15E \U000110AB", "plain ascii", ""]
# Every character with a canonical decomposition, decomposed, for a whole-table check.
everything = " ".join(unicodedata.normalize("NFD", chr(cp)) for cp in range(0xC0, 0x110000)
                      if not 0xD800 <= cp <= 0xDFFF and unicodedata.decomposition(chr(cp))[:1] not in ("", "<"))
norm_texts.append(everything)
normalization = [{"text": t, "nfc": unicodedata.normalize("NFC", t), "nfd": unicodedata.normalize("NFD", t),
                  "stripped": "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")}
                 for t in norm_texts]

write_json("expected.json", {
    "normalization": normalization,
    "t5": {"vocab_size": t5_vocab, "extra_ids": extra, "cases": t5_cases},
    "llama": {"vocab_size": llama_sp.get_piece_size(), "cases": llama_cases},
    "gpt2": {"vocab_size": gpt2_vocab, "cases": gpt2_cases},
    "qwen2": {"vocab_size": qwen2_vocab, "cases": qwen2_cases},
    "bert": {"vocab_size": len(bert_vocab), "cases": bert_cases},
})


# ---------------------------------------------------------------- Unicode normalization tables
def write_normalization_tables():
    """src/Encore.Formats/Tokenization/UnicodeNormalization.Tables.cs: the canonical decomposition
    mappings (one level, with whether each pair is a primary composite, i.e. recomposes under NFC)
    and the nonzero canonical combining classes, from Python's unicodedata. Encore builds with
    InvariantGlobalization, where .NET's string.Normalize returns its input unchanged, and BERT's
    accent stripping (NFD) and Qwen2's NFC normalizer need the real thing. Hangul is algorithmic."""
    dec, ccc = [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:
            continue
        c = chr(cp)
        if unicodedata.combining(c):
            ccc.append((cp, unicodedata.combining(c)))
        d = unicodedata.decomposition(c)
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        a, b = parts[0], parts[1] if len(parts) > 1 else -1
        composes = int(b >= 0 and unicodedata.normalize("NFC", chr(a) + chr(b)) == c)
        dec.append((cp, a, b, composes))

    def rows(items, per):
        flat = [", ".join(map(str, t)) for t in items]
        return "\n".join("        " + ", ".join(flat[i:i + per]) + "," for i in range(0, len(flat), per))

    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../src/Encore.Formats/Tokenization")
    head = f"""namespace Encore.Formats.Tokenization;

// Generated by tools/reference/tokenizer_fixtures.py from Python's unicodedata (Unicode {unicodedata.unidata_version}).
internal static partial class UnicodeNormalization
{{
"""
    with open(os.path.join(here, "UnicodeNormalization.Decompositions.cs"), "w", encoding="utf-8", newline="\n") as f:
        f.write(head + f"""    /// <summary>
    /// Canonical decompositions as (code point, first, second or -1); the code point is negated when
    /// the pair does not recompose under NFC (composition exclusions, non-starter decompositions).
    /// </summary>
    static ReadOnlySpan<int> Decompositions =>
    [
{rows([(cp if composes or b < 0 else -cp, a, b) for cp, a, b, composes in dec], 8)}
    ];
}}
""")
    with open(os.path.join(here, "UnicodeNormalization.CombiningClasses.cs"), "w", encoding="utf-8", newline="\n") as f:
        f.write(head + f"""    /// <summary>Nonzero canonical combining classes as (code point, class).</summary>
    static ReadOnlySpan<int> CombiningClasses =>
    [
{rows(ccc, 12)}
    ];
}}
""")


write_normalization_tables()
