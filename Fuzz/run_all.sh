#!/usr/bin/env bash
# Builds every fuzz target with the toolchain's libFuzzer + AddressSanitizer and runs each for SECONDS, one at a
# time at the lowest CPU priority (others build and benchmark on the same machine).
#   bash Fuzz/run_all.sh SECONDS [TARGET ...]      (targets: ppm jpeg png symbol params flatfile onnx)
# Prints per target: seconds run, executions, coverage (cov/ft from libFuzzer's final status line), crashes.
# Crash/timeout/OOM inputs go to Fuzz/crashes/ (ignored); corpora grow in .build-fuzz/corpus/<target>/ (ignored).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:?usage: run_all.sh SECONDS [TARGET ...]}; shift
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(ppm jpeg png symbol params flatfile onnx)

declare -A SOURCE=([ppm]=PPMTarget [jpeg]=JPEGTarget [png]=PNGTarget [symbol]=SymbolTarget [params]=ParamsTarget
                   [flatfile]=FlatFileTarget [onnx]=ONNXTarget)
# Largest input per format: above the biggest seed, small enough to keep executions fast.
declare -A MAXLEN=([ppm]=65536 [jpeg]=16384 [png]=16384 [symbol]=65536 [params]=450000 [flatfile]=450000 [onnx]=65536)

mkdir -p .build-fuzz Fuzz/crashes
[ -d .build-fuzz/seeds/onnx ] || bash Fuzz/make_corpus.sh
# Compile a snapshot of the library (others edit the tree while the targets build).
rm -rf .build-fuzz/src && cp -r Sources/FaceEmbed .build-fuzz/src
LIB=$(find .build-fuzz/src -name '*.swift' | sort)
SUMMARY=()
for t in "${TARGETS[@]}"; do
  exe=.build-fuzz/$t
  if [ -n "${SKIP_BUILD:-}" ] && [ -x "$exe" ]; then
    echo "== $t: using the existing $exe (SKIP_BUILD)" >&2
  else
    echo "== $t: building" >&2
    if ! nice -n 19 swiftc -sanitize=fuzzer,address -parse-as-library -O -swift-version 6 -enable-experimental-feature BuiltinModule -module-name FuzzTarget -package-name FaceEmbed \
        $LIB Fuzz/FuzzSupport.swift "Fuzz/${SOURCE[$t]}.swift" -o "$exe" 2> ".build-fuzz/$t.build.log"; then
      echo "== $t: BUILD FAILED (see .build-fuzz/$t.build.log)" >&2; tail -20 ".build-fuzz/$t.build.log" >&2
      SUMMARY+=("$t: build failed"); continue
    fi
  fi
  mkdir -p ".build-fuzz/corpus/$t" ".build-fuzz/seeds/$t" Fuzz/crashes/spurious
  start=$(date +%s); execs=0; crashes=0; spurious=0; cov=""; first=""; rc=0; : > ".build-fuzz/$t.log"
  echo "== $t: fuzzing ${SECONDS_EACH}s (max_len ${MAXLEN[$t]})" >&2
  # libFuzzer stops at the first crash or timeout. The timeout is wall-clock, and at nice 19 on a busy machine a
  # starved process can pass it: a timeout input that then runs in under 10 s is set aside as spurious
  # (Fuzz/crashes/spurious/) and fuzzing resumes for the remaining time. A real crash ends the target's run.
  while :; do
    left=$(( SECONDS_EACH - ($(date +%s) - start) ))
    [ "$left" -le 0 ] && break
    before=$(ls Fuzz/crashes | grep -c "^$t-" || true)
    nice -n 19 "$exe" -max_len="${MAXLEN[$t]}" -rss_limit_mb=2048 -timeout=10 -max_total_time="$left" \
      -print_final_stats=1 -artifact_prefix="Fuzz/crashes/$t-" \
      ".build-fuzz/corpus/$t" ".build-fuzz/seeds/$t" > ".build-fuzz/$t.part.log" 2>&1
    rc=$?
    cat ".build-fuzz/$t.part.log" >> ".build-fuzz/$t.log"
    n=$(grep -o 'stat::number_of_executed_units: [0-9]*' ".build-fuzz/$t.part.log" | tail -1 | awk '{print $2}')
    if [ -z "$n" ]; then n=$(grep -oE '^#[0-9]+' ".build-fuzz/$t.part.log" | tail -1 | tr -d '#'); fi
    execs=$(( execs + ${n:-0} ))
    c=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' ".build-fuzz/$t.part.log" | tail -1); [ -n "$c" ] && cov=$c
    after=$(ls Fuzz/crashes | grep -c "^$t-" || true)
    [ "$after" -le "$before" ] && break
    new=$(ls -t Fuzz/crashes | grep "^$t-" | head -1)
    if [[ "$new" == "$t-timeout-"* ]] && timeout 10 nice -n 10 "$exe" -runs=1 "Fuzz/crashes/$new" > /dev/null 2>&1; then
      mv "Fuzz/crashes/$new" Fuzz/crashes/spurious/; spurious=$(( spurious + 1 )); continue
    fi
    crashes=$(( crashes + 1 ))
    first="$(grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer)|Fatal error|crashed:' ".build-fuzz/$t.part.log"); input: Fuzz/crashes/$new"
    break
  done
  took=$(( $(date +%s) - start ))
  line="$t: ${took}s, $execs executions, ${cov:-no coverage line}, crashes: $crashes, spurious timeouts: $spurious"
  [ "$crashes" -gt 0 ] && line+="; $first"
  echo "$line" | tee -a .build-fuzz/summary.txt
  SUMMARY+=("$line")
done
echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
