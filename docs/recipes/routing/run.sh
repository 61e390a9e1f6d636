#!/usr/bin/env bash
# Swift/super routing in E-LANG's own setting, classification as text: package name and description →
# Debian section (data/debian's `section` field), a 1.44M-parameter encoder–decoder as the swift model and a
# 6.69M one as the super model, one tokenizer; then the routing study on validation and test examples, scored by
# exact match. Read docs/adaptive-compute.md ("Classification as text") first. Run from the repository root:
#   docs/recipes/routing/run.sh            # the whole recipe (about 65 minutes on 2 cores)
#   SCALE=0.1 docs/recipes/routing/run.sh  # the same commands with a tenth of the steps (a smoke run)
set -euo pipefail

E=${E:-"dotnet src/Encore.Cli/bin/Release/net10.0/encore.dll"}
OUT=${OUT:-runs/routing}
SCALE=${SCALE:-1}
THREADS=${THREADS:-$(nproc)}
D=data/debian
R=docs/recipes/routing
source "$(dirname "$0")/../stages.sh"

TASK=(--data $D/train.jsonl.gz --validation $D/validation.jsonl.gz --source-field package --source-field source --target-field section
  --max-source-tokens 64 --max-tokens 2048 --eval-examples 64 --threads "$THREADS" --keep-checkpoints 2)
mkdir -p "$OUT"

# 1. The swift model (the Mu recipe's student shape: 4 + 2 layers, width 128). Its first run trains the 2,048-id
#    BPE both models share; the swift model used is the longer second run on that tokenizer.
stage tokenizer $E train --config docs/recipes/mu/student-encdec.json --vocab 2048 "${TASK[@]}" --steps "$(steps 600)" --lr 3e-3 --warmup 30 \
  --eval-every "$(steps 200)" --save-every "$(steps 600)" --out "$OUT/tokenizer" --overwrite
stage swift $E train --config docs/recipes/mu/student-encdec.json --tokenizer "$OUT/tokenizer" "${TASK[@]}" --steps "$(steps 2400)" --lr 3e-3 --warmup 30 \
  --eval-every "$(steps 600)" --save-every "$(steps 600)" --out "$OUT/swift" --overwrite

# 2. The super model: 6 + 2 layers, width 256 (super-encdec.json), in two stages (the second at half the rate).
stage super-1 $E train --config $R/super-encdec.json --tokenizer "$OUT/tokenizer" "${TASK[@]}" --steps "$(steps 3000)" --lr 1.5e-3 --warmup 60 \
  --eval-every "$(steps 500)" --save-every "$(steps 3000)" --out "$OUT/super-1" --overwrite
stage super $E train -m "$OUT/super-1" "${TASK[@]}" --steps "$(steps 3000)" --lr 7e-4 --warmup 30 \
  --eval-every "$(steps 1000)" --save-every "$(steps 1000)" --out "$OUT/super" --overwrite

# 3. The routing study, one thread, batch 1: the first 1,000 validation examples scored with thresholds calibrated
#    on the next 1,000, and the first 1,000 test examples with thresholds calibrated on the first 1,000 of validation.
STUDY=(-m swift="$OUT/swift" -m super="$OUT/super" --source-field package --source-field source --target-field section --route
  --route-metric exact-match --max-new-tokens 6 --threads 1 --route-fractions 0.1,0.2,0.3,0.4,0.5 --markdown)
stage study-validation $E eval "${STUDY[@]}" --data $D/validation.jsonl.gz --examples 1000 --calibration-examples 1000 --plot "$OUT/routing-validation.png"
stage study-test $E eval "${STUDY[@]}" --data $D/test.jsonl.gz --examples 1000 --calibration-data $D/validation.jsonl.gz --calibration-examples 1000 \
  --plot "$OUT/routing-test.png"
log "finished: $OUT/study-validation.log, $OUT/study-test.log"
