#!/usr/bin/env bash
# A fuzzing campaign over every target (or the ones named): builds the harness, instruments the
# Encore assemblies and Microsoft.ML.Tokenizers with SharpFuzz, and runs AFL++ on each target in
# turn, seeded from fuzz/corpus/<target>/. Findings land in $OUT/<target>/default/{crashes,hangs}/.
#   fuzz/campaign.sh [target ...]
# Environment: EXECS (executions per target, default 1000000), SECONDS_PER_TARGET (a cap on the
# time per target, default 600), TIMEOUT_MS (per-input limit, default 10000), OUT (default /tmp/encore-fuzz).
# Needs afl-fuzz (Debian: apt-get install afl++) and the sharpfuzz tool
# (dotnet tool install --tool-path ~/.sharpfuzz SharpFuzz.CommandLine --version 2.3.0).
set -euo pipefail
cd "$(dirname "$0")/.."
EXECS=${EXECS:-1000000}
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-600}
TIMEOUT_MS=${TIMEOUT_MS:-10000}
OUT=${OUT:-/tmp/encore-fuzz}
SHARPFUZZ=${SHARPFUZZ:-$(command -v sharpfuzz || echo "$HOME/.sharpfuzz/sharpfuzz")}

dotnet build fuzz/Encore.Fuzz -c Release 2>&1 | tail -n 2
BIN="$OUT/bin"
rm -rf "$BIN" && mkdir -p "$OUT" && cp -r fuzz/Encore.Fuzz/bin/Release/net10.0 "$BIN"
for dll in Encore.Formats Encore.Models Encore.Server Encore.Training Microsoft.ML.Tokenizers; do
  "$SHARPFUZZ" "$BIN/$dll.dll" >/dev/null
done

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz/corpus)
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
printf '%-18s %10s %9s %8s %7s %7s %6s\n' target execs exec/s edges cover crashes hangs
for t in "${targets[@]}"; do
  rm -rf "${OUT:?}/$t"
  afl-fuzz -i "fuzz/corpus/$t" -o "$OUT/$t" -t "$TIMEOUT_MS" -m none -E "$EXECS" -V "$SECONDS_PER_TARGET" \
    -- dotnet "$BIN/Encore.Fuzz.dll" "$t" >"$OUT/$t.log" 2>&1 || true
  s="$OUT/$t/default/fuzzer_stats"
  if [ -f "$s" ]; then
    v() { sed -nE "s/^$1 *: *//p" "$s"; }
    printf '%-18s %10s %9s %8s %7s %7s %6s\n' "$t" "$(v execs_done)" "$(v execs_per_sec)" "$(v edges_found)" "$(v bitmap_cvg)" "$(v saved_crashes)" "$(v saved_hangs)"
  else
    printf '%-18s did not start; see %s\n' "$t" "$OUT/$t.log"
  fi
done
