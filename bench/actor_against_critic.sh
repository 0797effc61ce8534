#!/usr/bin/env bash
# An actor-critic method's actor against its own critic, over two training seeds, paired
# over users online.
#
#   bench/actor_against_critic.sh OUT METHOD [WORLD ...]      (default worlds: 7 8 9)
#
# For each world W (generated into OUT/world-W when missing), trains METHOD with seeds W
# and W + 100, DeepFM and LTR with seed W, and runs the online A/B test per training seed
# with that seed's actor as the control and its two diagnostic rankings as arms
# (`mmrf ab --critic-arms`): ranking by the WatchTime critic's per-item value
# (METHOD-critic-greedy) and by the WatchTime reward head (METHOD-reward-head). DeepFM and
# LTR run in the same test, so the table also says how far each ranking is from the best
# supervised ranker. A ranking is ahead of (behind) the actor on a world when its lift over
# the actor is above (below) 0 with its interval at both seeds. Choose settings from worlds
# 7-9 only.
# Needs a release build.
set -euo pipefail
out=$1
method=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mmrf="$here/../target/release/mmrf"
worlds=("$@")
[ ${#worlds[@]} -eq 0 ] && worlds=(7 8 9)
mkdir -p "$out"
for w in "${worlds[@]}"; do
    world="$out/world-$w"
    [ -f "$world/mmrf_world.json" ] || "$mmrf" world generate --seed "$w" --out "$world" >/dev/null
    for s in "$w" $((w + 100)); do
        run="$out/runs-$w/$method.s$s"
        [ -f "$run/run.toml" ] || "$mmrf" train --quiet --method "$method" --data "$world" --out "$run" --seed "$s" --force
    done
    for m in deepfm ltr; do
        run="$out/runs-$w/$m"
        [ -f "$run/run.toml" ] || "$mmrf" train --quiet --method "$m" --data "$world" --out "$run" --seed "$w" --force
    done
    for s in "$w" $((w + 100)); do
        "$mmrf" ab --no-oracles --critic-arms --json --data "$world" --control "$method.s$s" \
            --run "$out/runs-$w/$method.s$s" --run "$out/runs-$w/deepfm" --run "$out/runs-$w/ltr" \
            >"$out/ab-$w-s$s.json"
    done
done
python3 - "$out" "$method" "${worlds[@]}" <<'PY'
import json, sys
out, method, worlds = sys.argv[1], sys.argv[2], sys.argv[3:]
fmt = lambda l: f"{l['mean'] * 100:+.1f} % [{l['ci'][0] * 100:+.1f}, {l['ci'][1] * 100:+.1f}]"
arms = ["critic-greedy", "reward-head", "deepfm", "ltr"]
ahead = {a: [] for a in arms}
behind = {a: [] for a in arms}
print(f"Session WatchTime lift over {method}'s actor, paired over users (training seed W / W + 100):\n")
print("| world | " + " | ".join(f"{a} vs {method}" for a in arms) + f" | {method} videos / session | critic-greedy videos / session |")
print("|---:|" + "---:|" * (len(arms) + 2))
for w in worlds:
    seeds = [int(w), int(w) + 100]
    reports = [json.load(open(f"{out}/ab-{w}-s{s}.json")) for s in seeds]
    by_name = [{a["name"]: a for a in r["arms"]} for r in reports]
    cells = []
    for a in arms:
        names = [f"{method}.s{s}-{a}" if a in ("critic-greedy", "reward-head") else a for s in seeds]
        lifts = [dict(b[n]["lift"])["watch_time"] for b, n in zip(by_name, names)]
        cells.append(" / ".join(fmt(l) for l in lifts))
        if all(l["ci"][0] > 0 for l in lifts):
            ahead[a].append(w)
        if all(l["ci"][1] < 0 for l in lifts):
            behind[a].append(w)
    depth = lambda b, n: dict(b[n]["per_session"])["depth"]["mean"]
    d_actor = " / ".join(f"{depth(b, f'{method}.s{s}'):.2f}" for b, s in zip(by_name, seeds))
    d_critic = " / ".join(f"{depth(b, f'{method}.s{s}-critic-greedy'):.2f}" for b, s in zip(by_name, seeds))
    print(f"| {w} | " + " | ".join(cells) + f" | {d_actor} | {d_critic} |")
print()
for a in arms:
    for side, ws in (("ahead of", ahead[a]), ("behind", behind[a])):
        print(f"{a} {side} {method}'s actor at both training seeds on worlds {', '.join(ws) or 'none'} ({len(ws)} of {len(worlds)})")
PY
