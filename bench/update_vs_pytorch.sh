#!/usr/bin/env bash
# mmrf's update against bench/mmrf_update.py, in interleaved rounds on one machine.
#
#   bench/update_vs_pytorch.sh [ROUNDS] [STEPS] [PYTHON] [WORLD_DIR]
#
# Each round times `mmrf bench train-step --steps STEPS` and then the PyTorch port at the
# shapes and parameter counts mmrf printed (the port refuses to run if its networks'
# parameter counts differ from mmrf's). Prints each side's updates/s per round, sorted, and
# the ratio of the medians. Needs a release build (`cargo build --release`) and PYTHON with
# torch installed. Run it on an otherwise idle machine.
set -euo pipefail
rounds=${1:-5}
steps=${2:-300}
python=${3:-python3}
world=${4:-$(mktemp -d)/world}
here=$(cd "$(dirname "$0")" && pwd)
mmrf="$here/../target/release/mmrf"
ours=() theirs=()
for ((r = 1; r <= rounds; r++)); do
    out=$("$mmrf" bench train-step --steps "$steps" --dir "$world")
    ours+=("$(grep -o 'updates/s=[0-9.]*' <<<"$out" | head -1 | cut -d= -f2)")
    params=$(grep '^params' <<<"$out")
    shapes=$(grep '^shapes' <<<"$out" | sed 's/.*: //')
    # shellcheck disable=SC2086
    py=$("$python" "$here/mmrf_update.py" --threads 2 --steps "$steps" --params "$params" $shapes)
    theirs+=("$(grep -o 'updates/s=[0-9.]*' <<<"$py" | cut -d= -f2)")
    echo "round $r: mmrf ${ours[-1]} pytorch ${theirs[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "mmrf    (sorted): $(printf '%s\n' "${ours[@]}" | sort -g | tr '\n' ' ')median $(median "${ours[@]}")"
echo "pytorch (sorted): $(printf '%s\n' "${theirs[@]}" | sort -g | tr '\n' ' ')median $(median "${theirs[@]}")"
awk -v a="$(median "${ours[@]}")" -v b="$(median "${theirs[@]}")" 'BEGIN {printf "mmrf / pytorch: %.2fx\n", a / b}'
