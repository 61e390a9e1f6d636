#!/usr/bin/env bash
# T5Gemma's claim at small scale on the bundled Debian task (description → synopsis): two decoder-only
# models pretrained on the description corpus (a small one and one twice as deep), then, with one
# fine-tuning budget each,
#   (a) the small decoder-only model fine-tuned as it is;
#   (b) its balanced adaptation: its blocks as a bidirectional encoder and again as the decoder;
#   (c) an unbalanced adaptation: the encoder from the deep model, the decoder from the small one;
#   (d) an encoder–decoder of (b)'s shape from random initialization;
#   (e) unbalanced in width too, as T5Gemma 9B-2B: the encoder from a deep and 1.5× wider model, the decoder
#       from the small one, cross-attention reading the encoder's width;
# all scored in one table (validation loss, ROUGE-L, first-token latency, decode speed) with the curves.
# Read docs/recipes/t5gemma.md. Run from the repository root:
#   docs/recipes/t5gemma/run.sh            # the whole recipe
#   SCALE=0.1 docs/recipes/t5gemma/run.sh  # the same commands with a tenth of the steps (a smoke run)
set -euo pipefail

E=${E:-"dotnet src/Encore.Cli/bin/Release/net10.0/encore.dll"}
OUT=${OUT:-runs/t5gemma}
SCALE=${SCALE:-1}
THREADS=${THREADS:-$(nproc)}
D=data/debian
R=docs/recipes/t5gemma
source "$(dirname "$0")/../stages.sh"

PRETRAIN=$(steps 800)   # causal LM on the description corpus, both decoder-only models
FINETUNE=$(steps 800)   # description → synopsis, every model (a)–(d)
EVERY=$(steps 200)
WARMUP_CROSS=$(steps 100)  # (c)'s fresh cross-attention trained alone first (counted in its budget)

COMMON=(--max-tokens 4096 --max-source-tokens 128 --keep-checkpoints 4 --samples 0 --threads "$THREADS" --json)
FT=(--data $D/train.jsonl.gz --validation $D/validation.jsonl.gz --steps "$FINETUNE" --lr 3e-3 --warmup 30
    --eval-every "$EVERY" --save-every "$EVERY" --eval-examples 32 --overwrite "${COMMON[@]}")

mkdir -p "$OUT"

# 1. Pretraining. The small model's run also trains the 2,048-id BPE every later model shares.
stage small-pre $E train -m $R/small.json --data $D/corpus.txt.gz --vocab 2048 --objective causal-lm --steps "$PRETRAIN" \
  --lr 2e-3 --warmup 40 --eval-every "$PRETRAIN" --save-every "$PRETRAIN" --eval-examples 0 --out "$OUT/small-pre" --overwrite "${COMMON[@]}"
stage big-pre $E train -m $R/big.json --tokenizer "$OUT/small-pre" --data $D/corpus.txt.gz --objective causal-lm --steps "$PRETRAIN" \
  --lr 2e-3 --warmup 40 --eval-every "$PRETRAIN" --save-every "$PRETRAIN" --eval-examples 0 --out "$OUT/big-pre" --overwrite "${COMMON[@]}"
stage wide-pre $E train -m $R/wide.json --tokenizer "$OUT/small-pre" --data $D/corpus.txt.gz --objective causal-lm --steps "$PRETRAIN" \
  --lr 2e-3 --warmup 40 --eval-every "$PRETRAIN" --save-every "$PRETRAIN" --eval-examples 0 --out "$OUT/wide-pre" --overwrite "${COMMON[@]}"

# 2. The starting points of (b), (c), (d) and (e).
stage b-init $E adapt --from "$OUT/small-pre" --out "$OUT/b-init"
stage c-init $E adapt --from "$OUT/big-pre" --decoder-from "$OUT/small-pre" --out "$OUT/c-init"
stage e-init $E adapt --from "$OUT/wide-pre" --decoder-from "$OUT/small-pre" --out "$OUT/e-init"

# 3. One fine-tuning budget each: the same steps, batches, schedule and tokenizer. The encoder–decoders
#    take the encoder's own-token loss at 0.5, as the Mu recipe's students do.
stage a-decoder $E train -m "$OUT/small-pre" --out "$OUT/a-decoder" "${FT[@]}"
stage b-balanced $E train -m "$OUT/b-init" --encoder-token-loss 0.5 --out "$OUT/b-balanced" "${FT[@]}"
stage c-unbalanced $E train -m "$OUT/c-init" --encoder-token-loss 0.5 --warmup-cross-attention-only "$WARMUP_CROSS" --out "$OUT/c-unbalanced" "${FT[@]}"
stage e-wide $E train -m "$OUT/e-init" --encoder-token-loss 0.5 --warmup-cross-attention-only "$WARMUP_CROSS" --out "$OUT/e-wide" "${FT[@]}"
stage d-scratch $E train -m "$OUT/b-init/config.json" --tokenizer "$OUT/small-pre" --encoder-token-loss 0.5 --out "$OUT/d-scratch" "${FT[@]}"

# 4. One table on the same 300 validation examples, with batch-1 speed, and the fine-tuning curves.
log "eval"
$E eval -m a-decoder="$OUT/a-decoder" -m b-balanced="$OUT/b-balanced" -m c-unbalanced="$OUT/c-unbalanced" -m d-scratch="$OUT/d-scratch" -m e-wide="$OUT/e-wide" \
  --data $D/validation.jsonl.gz --examples 300 --max-new-tokens 24 --samples 0 \
  --speed --plot "$OUT/loss.png" --markdown --threads "$THREADS" | tee "$OUT/results.md"
log "finished: $OUT/results.md, $OUT/loss.png"
