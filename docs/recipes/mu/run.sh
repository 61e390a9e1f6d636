#!/usr/bin/env bash
# The Mu recipe on the bundled Debian task (package description → synopsis): a
# decoder-only teacher, then encoder–decoder and decoder-only students of equal size, each trained
# with cross-entropy alone and with on-policy distillation, all scored in one table.
# Read docs/recipes/mu-distillation.md first. Run from the repository root:
#   docs/recipes/mu/run.sh            # the whole recipe (about 90 minutes on 2 cores)
#   SCALE=0.1 docs/recipes/mu/run.sh  # the same commands with a tenth of the steps (a smoke run)
set -euo pipefail

E=${E:-"dotnet src/Encore.Cli/bin/Release/net10.0/encore.dll"}
OUT=${OUT:-runs/mu}
SCALE=${SCALE:-1}
THREADS=${THREADS:-$(nproc)}
D=data/debian
R=docs/recipes/mu
source "$(dirname "$0")/../stages.sh"

TEACHER_PRETRAIN=$(steps 1000)   # causal LM on the training descriptions
TEACHER_FINETUNE=$(steps 1500)   # then description → synopsis
EVERY=$(steps 250)              # student evaluations and checkpoints
STUDENT=$((6 * EVERY))          # every student: the same 1,500 steps of the same batches on one schedule
KD_FROM=$((4 * EVERY))          # the distilled students branch off their cross-entropy run at step 1,000 (a checkpoint)

COMMON=(--max-tokens 4096 --max-source-tokens 128 --keep-checkpoints 6 --eval-examples 32 --samples 2 --threads "$THREADS" --json)

mkdir -p "$OUT"

# 1. The teacher: a decoder-only model about 4× the students' size. Pretraining also trains the
#    2,048-id BPE every later model shares (distillation needs one vocabulary).
stage teacher-pretrain $E train --config $R/teacher.json --data $D/corpus.txt.gz --vocab 2048 --objective causal-lm \
  --steps "$TEACHER_PRETRAIN" --lr 2e-3 --warmup 60 --eval-every "$TEACHER_PRETRAIN" --save-every "$TEACHER_PRETRAIN" \
  --out "$OUT/teacher-pretrain" --overwrite "${COMMON[@]}"
stage teacher $E train --config "$OUT/teacher-pretrain" --tokenizer "$OUT/teacher-pretrain" \
  --data $D/train.jsonl.gz --validation $D/validation.jsonl.gz \
  --steps "$TEACHER_FINETUNE" --lr 1.5e-3 --warmup 30 --eval-every 500 --save-every 500 \
  --out "$OUT/teacher" --overwrite "${COMMON[@]}"

# 2. The students, each on the same steps, batches, schedule and tokenizer. Each architecture is
#    trained with cross-entropy for the whole schedule (-ce); the distilled student (-kd) is the same
#    run forked at step KD_FROM (weights, optimizer state, data position) and finished on the same
#    schedule with on-policy distillation instead.
train_pairs() {   # train_pairs NAME COMMAND...: the shared data and logging flags of every student run
  local name=$1; shift
  stage "$name" $E "$@" --tokenizer "$OUT/teacher-pretrain" --data $D/train.jsonl.gz --validation $D/validation.jsonl.gz \
    --steps "$STUDENT" --lr 3e-3 --warmup 30 --eval-every "$EVERY" --save-every "$EVERY" --out "$OUT/$name" --overwrite "${COMMON[@]}"
}
for arch in encdec decoder; do
  extra=()
  [[ $arch == encdec ]] && extra+=(--encoder-token-loss 0.5)
  train_pairs "$arch-ce" train --config "$R/student-$arch.json" "${extra[@]}"
  train_pairs "$arch-kd" distill --teacher "$OUT/teacher" --student "$R/student-$arch.json" --on-policy "${extra[@]}" \
    --resume-from "$OUT/$arch-ce/checkpoint-$KD_FROM"
done

# 3. One table on the same 300 validation examples, with decode speed, and the loss curves.
log "eval"
$E eval -m teacher="$OUT/teacher" -m encdec-ce="$OUT/encdec-ce" -m encdec-kd="$OUT/encdec-kd" \
  -m decoder-ce="$OUT/decoder-ce" -m decoder-kd="$OUT/decoder-kd" \
  --data $D/validation.jsonl.gz --examples 300 --max-new-tokens 24 --samples 0 \
  --speed --plot "$OUT/loss.png" --markdown --threads "$THREADS" | tee "$OUT/results.md"
log "finished: $OUT/results.md, $OUT/loss.png"
