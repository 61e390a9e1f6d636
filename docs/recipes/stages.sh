# What the recipes' run.sh scripts share; sourced after they set OUT and SCALE.
#   steps N          N × SCALE, rounded, at least 2
#   log TEXT…        a timestamped line on stdout and in $OUT/recipe.log
#   stage NAME CMD…  runs CMD once into $OUT/NAME.log; a stage finished before (its NAME.done marker) is skipped on a rerun
steps() { awk -v s="$1" -v k="$SCALE" 'BEGIN { n = int(s * k + 0.5); print (n < 2 ? 2 : n) }'; }
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/recipe.log"; }
stage() {
  local name=$1; shift
  if [[ -e "$OUT/$name.done" ]]; then log "$name: done before, skipped"; return; fi
  log "$name: $*"
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1 || { log "$name failed; see $OUT/$name.log"; tail -5 "$OUT/$name.log"; exit 1; }
  touch "$OUT/$name.done"
  log "$name: $((SECONDS - t0)) s"
}
