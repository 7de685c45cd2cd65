#!/usr/bin/env bash
# Time the bulk bins as a user runs them, against kernel peers, inside a network namespace
# this script creates (nothing touches the machine's own).
#
# Usage: sudo scripts/bins_bench.sh [MIB] [RUNS] [EXTRA BIN FLAGS...]
#   e.g. sudo scripts/bins_bench.sh 512 3 --no-hash
# With --no-hash the Python peers skip hashing too (so they do not limit the figure).
# Prints each run's summary line and the median Gbit/s of tcp_bulk_download and
# tcp_bulk_upload, on the plain path and with --offload. Needs the release bins
# (cargo build --release) and python3 for the peers.
set -euo pipefail
if [[ "${1:-}" != "--in-netns" ]]; then
    exec unshare -n "$0" --in-netns "$@"
fi
shift
MIB=${1:-512}
RUNS=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
EXTRA=("$@")
PEER=()
for f in "${EXTRA[@]}"; do [[ $f == --no-hash ]] && PEER+=(--no-hash); done
cd "$(dirname "$0")/.."
BIN=target/release
BYTES=$((MIB << 20))
ip link set lo up

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_one() { # direction path
    local dir=$1 path=$2 flags=() peer
    [[ $path == offload ]] && flags+=(--offload)
    if [[ $dir == download ]]; then
        python3 scripts/chargen_server.py --bytes "$BYTES" --once "${PEER[@]}" >/dev/null 2>&1 &
    else
        python3 scripts/sink_server.py 3000 --once "${PEER[@]}" >/dev/null 2>&1 &
    fi
    peer=$!
    sleep 0.3
    local out
    if [[ $dir == download ]]; then
        out=$(timeout 120 $BIN/tcp_bulk_download --no-wait --log warn "${flags[@]}" "${EXTRA[@]}" 2>/dev/null)
    else
        out=$(timeout 120 $BIN/tcp_bulk_upload --no-wait --log warn --bytes "$BYTES" "${flags[@]}" "${EXTRA[@]}" 2>/dev/null)
    fi
    wait "$peer" || true
    echo "$out" >&2
    echo "$out" | sed -n 's/.*gbit_per_s=\([0-9.]*\).*/\1/p'
}

for dir in download upload; do
    for path in plain offload; do
        gs=()
        for _ in $(seq "$RUNS"); do gs+=("$(run_one $dir $path)"); done
        m=$(printf '%s\n' "${gs[@]}" | median)
        printf '%-9s %-8s median %6s Gbit/s   runs: %s\n' "$dir" "$path" "$m" "${gs[*]}"
    done
done
