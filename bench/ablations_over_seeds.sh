#!/usr/bin/env bash
# MMRF against its ablations over two training seeds, paired over users online.
#
#   bench/ablations_over_seeds.sh BENCH_DIR [WORLD ...]
#
# BENCH_DIR is the output of `mmrf benchmark --seeds 3 [--seed S] --out BENCH_DIR`: its
# `seed-W/runs/{mmrf,mmrf-co,mmrf-da,mmrf-ns}` are the first training seed (W). This
# retrains the four with seed W + 100 into BENCH_DIR/seed-W/retrained/, runs the online
# A/B test with MMRF as control at each seed (`mmrf ab --no-oracles`), and MMRF's two
# trainings against each other (retraining's spread), then prints the table. MMRF is ahead
# of an ablation on a world when the ablation's lift is below 0 with its interval at both
# seeds, by more than MMRF's own retraining moved it. Needs a release build.
set -euo pipefail
bench=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
mmrf="$here/../target/release/mmrf"
worlds=("$@")
if [ ${#worlds[@]} -eq 0 ]; then
    worlds=($(ls "$bench" | sed -n 's/^seed-\([0-9]*\)$/\1/p' | sort -n))
fi
methods=(mmrf mmrf-co mmrf-da mmrf-ns)
for w in "${worlds[@]}"; do
    dir="$bench/seed-$w"
    for m in "${methods[@]}"; do
        run="$dir/retrained/$m"
        [ -f "$run/model.safetensors" ] && continue
        rm -rf "$run"
        "$mmrf" train --quiet --method "$m" --data "$dir/world" --out "$run" --seed $((w + 100))
    done
    for s in 1 2; do
        arms="$dir/ab-seed$s"
        mkdir -p "$arms"
        for m in "${methods[@]}"; do
            if [ $s -eq 1 ]; then ln -sfn "$dir/runs/$m" "$arms/$m.s1"; else ln -sfn "$dir/retrained/$m" "$arms/$m.s2"; fi
        done
    done
    ln -sfn "$dir/retrained/mmrf" "$dir/ab-seed1/mmrf.s2"
    a="$dir/ab-seed1"
    "$mmrf" ab --no-oracles --json --data "$dir/world" --control mmrf.s1 --run "$a/mmrf.s1" --run "$a/mmrf.s2" \
        --run "$a/mmrf-co.s1" --run "$a/mmrf-da.s1" --run "$a/mmrf-ns.s1" >"$dir/ablations-seed1.json"
    a="$dir/ab-seed2"
    "$mmrf" ab --no-oracles --json --data "$dir/world" --control mmrf.s2 --run "$a/mmrf.s2" \
        --run "$a/mmrf-co.s2" --run "$a/mmrf-da.s2" --run "$a/mmrf-ns.s2" >"$dir/ablations-seed2.json"
done
python3 - "$bench" "${worlds[@]}" <<'PY'
import json, sys
bench, worlds = sys.argv[1], sys.argv[2:]
fmt = lambda l: f"{l['mean'] * 100:+.1f} % [{l['ci'][0] * 100:+.1f}, {l['ci'][1] * 100:+.1f}]"
lift = lambda f: {a["name"]: dict(a["lift"])["watch_time"] for a in json.load(open(f))["arms"]}
ahead = {m: [] for m in ["mmrf-co", "mmrf-da", "mmrf-ns"]}
print("| world | MMRF seed 2 vs seed 1 | MMRF-CO vs MMRF (seed 1 / seed 2) | MMRF-DA vs MMRF | MMRF-NS vs MMRF |")
print("|---:|---:|---:|---:|---:|")
for w in worlds:
    a1, a2 = lift(f"{bench}/seed-{w}/ablations-seed1.json"), lift(f"{bench}/seed-{w}/ablations-seed2.json")
    spread = a1["mmrf.s2"]
    cells = []
    for m in ahead:
        l1, l2 = a1[f"{m}.s1"], a2[f"{m}.s2"]
        cells.append(f"{fmt(l1)} / {fmt(l2)}")
        ok = l1["ci"][1] < 0 and l2["ci"][1] < 0 and min(-l1["mean"], -l2["mean"]) > abs(spread["mean"])
        if ok:
            ahead[m].append(w)
    print(f"| {w} | {fmt(spread)} | " + " | ".join(cells) + " |")
print()
for m, ws in ahead.items():
    print(f"MMRF ahead of {m} beyond retraining's spread on worlds {', '.join(ws) or 'none'} ({len(ws)} of {len(worlds)})")
PY
