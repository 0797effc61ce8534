#!/usr/bin/env bash
# The 27k scale end to end, each stage under `/usr/bin/time -v`: its wall time and peak
# resident memory (what `Maximum resident set size` reports).
#
#   bench/scale_27k.sh OUT [path/to/mmrf]
#
# Stages: generate the world (`--scale 27k`, seed 7); its first (parsing) load, cached
# reload and parse alone (`bench ingest --no-parquet`); MMRF's training (default settings,
# 1,500 updates); BC's (π_β for NCIS); MMRF's evaluation on the held-out split, π_β from
# BC, as `mmrf benchmark` evaluates. OUT needs about 20 GB: the world is 14 GB, 10 of them
# the candidate log (|C| = 400 ids per request).
set -euo pipefail
out=${1:?usage: bench/scale_27k.sh OUT [path/to/mmrf]}
mmrf=$(realpath "${2:-target/release/mmrf}")
mkdir -p "$out"
world=$out/world

stage() {
  local name=$1
  shift
  /usr/bin/time -v -o "$out/$name.time" "$@" >"$out/$name.out" 2>"$out/$name.err"
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/$name.time")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/$name.time")
  awk -v n="$name" -v w="$wall" -v r="$rss" 'BEGIN { printf "| %s | %s | %.2f GiB |\n", n, w, r / 1048576 }' |
    tee -a "$out/stages.md"
}

printf '| stage | wall (h:mm:ss) | peak RSS |\n|---|---:|---:|\n' | tee "$out/stages.md"
stage generate "$mmrf" world generate --scale 27k --seed 7 --out "$world"
stage ingest "$mmrf" bench ingest --data "$world" --no-parquet
stage train-mmrf "$mmrf" train --method mmrf --data "$world" --out "$out/mmrf" --quiet
stage train-bc "$mmrf" train --method bc --data "$world" --out "$out/bc" --quiet
stage eval-mmrf "$mmrf" eval --run "$out/mmrf" --data "$world" --behaviour "$out/bc"
echo
tail -n 12 "$world/mmrf_world.json"
cat "$out/ingest.out"
grep -h 'train_seconds' "$out/mmrf/run.toml" "$out/bc/run.toml"
cat "$out/eval-mmrf.out"
