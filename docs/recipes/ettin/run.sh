#!/usr/bin/env bash
# Ettin's comparison at small scale (arXiv 2507.11412) on the bundled Debian data: an encoder-only
# model trained with masked LM and a decoder-only model trained with causal LM, of one architecture
# (width, depth, heads, FFN, vocabulary, tokenizer), on the same descriptions for the same steps,
# batches and schedule; then both scored on retrieval, classification and generation.
# Read docs/recipes/ettin.md first. Run from the repository root:
#   docs/recipes/ettin/run.sh            # the whole recipe (about 70 minutes on 2 cores)
#   SCALE=0.1 docs/recipes/ettin/run.sh  # the same commands with a tenth of the steps (a smoke run)
set -euo pipefail

E=${E:-"dotnet src/Encore.Cli/bin/Release/net10.0/encore.dll"}
OUT=${OUT:-runs/ettin}
SCALE=${SCALE:-1}
THREADS=${THREADS:-$(nproc)}
D=data/debian
R=docs/recipes/ettin
source "$(dirname "$0")/../stages.sh"

PRETRAIN=$(steps 600)    # both models: the same steps of ≤ 4,096-token batches of the training descriptions
HALF=$(( THREADS > 1 ? THREADS / 2 : 1 ))   # the two pretraining runs share the machine

# Everything both pretraining runs share: data, tokenizer (a 2,048-id BPE trained on the same corpus,
# deterministically), batches, schedule, seed.
PRE=(--data $D/corpus.txt.gz --vocab 2048 --max-tokens 4096 --max-source-tokens 128 --steps "$PRETRAIN" --lr 3e-3 --warmup 40
  --eval-every "$PRETRAIN" --save-every "$PRETRAIN" --keep-checkpoints 1 --seed 1 --threads "$HALF" --json)

mkdir -p "$OUT"

report() {   # report NAME COMMAND...: the command's table into $OUT/NAME.md, once (a rerun keeps a finished one)
  local name=$1; shift
  if [[ -s "$OUT/$name.md" ]]; then log "$name: done before, skipped"; cat "$OUT/$name.md"; return; fi
  log "$name: $*"
  local t0=$SECONDS
  "$@" > "$OUT/$name.md.tmp"
  mv "$OUT/$name.md.tmp" "$OUT/$name.md"
  cat "$OUT/$name.md"
  log "$name: $((SECONDS - t0)) s"
}

# 1. Pretraining, both at once. The encoder masks 30% of the tokens (Ettin's and ModernBERT's rate; of
#    those, 80% become <mask>, 10% a random id, 10% stay); the decoder predicts every next token.
stage clm $E train --config $R/decoder.json --objective causal-lm --out "$OUT/clm" --overwrite "${PRE[@]}" & clm=$!
stage mlm $E train --config $R/encoder.json --objective mlm --mlm-probability 0.3 --out "$OUT/mlm" --overwrite "${PRE[@]}" & mlm=$!
wait $clm
wait $mlm
cmp "$OUT/clm/checkpoint-$PRETRAIN/tokenizer.json" "$OUT/mlm/checkpoint-$PRETRAIN/tokenizer.json" || { log "the two runs trained different tokenizers"; exit 1; }

# 2. Retrieval and classification, zero-shot from pretraining: embeddings of the held-out test split
#    (mean and last-token pooling for both models), each description's own synopsis ranked among all
#    synopses, and a linear probe for the package section fitted on training descriptions.
PROBE=(--data $D/test.jsonl.gz --max-length 128 --probe-field section --probe-data $D/train.jsonl.gz --probe-examples 5000 --threads "$THREADS")
report embeddings $E eval --embeddings -m mlm="$OUT/mlm" -m clm="$OUT/clm" --pooling mean,last "${PROBE[@]}"

# 3. Generation: the decoder fine-tuned on description → synopsis pairs for a short budget, scored with
#    the lead and majority baselines beside it. The encoder-only model has no way to write text.
FINETUNE=$(steps 600)
stage clm-pairs $E train --config "$OUT/clm" --data $D/train.jsonl.gz --validation $D/validation.jsonl.gz --max-tokens 4096 --max-source-tokens 128 \
  --steps "$FINETUNE" --lr 3e-3 --warmup 30 --eval-every "$FINETUNE" --save-every "$FINETUNE" --keep-checkpoints 1 --eval-examples 32 --samples 2 \
  --seed 1 --threads "$THREADS" --out "$OUT/clm-pairs" --overwrite --json
report generation $E eval -m clm-pairs="$OUT/clm-pairs" --data $D/test.jsonl.gz --examples 500 --max-new-tokens 24 --samples 0 --markdown --threads "$THREADS"

# 4. A control: both shapes untrained (random initialization), embedded and probed as in step 2, to
#    show what pretraining added over a random projection of the tokens.
[[ -e "$OUT/init-encoder/config.json" ]] || $E init --config $R/encoder.json --out "$OUT/init-encoder"
[[ -e "$OUT/init-decoder/config.json" ]] || $E init --config $R/decoder.json --out "$OUT/init-decoder"
report untrained $E eval --embeddings -m mlm-untrained="$OUT/init-encoder" -m clm-untrained="$OUT/init-decoder" \
  --tokenizer "$OUT/clm/checkpoint-$PRETRAIN" --pooling mean "${PROBE[@]}"
log "finished: $OUT/embeddings.md, $OUT/generation.md, $OUT/untrained.md"
