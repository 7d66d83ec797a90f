#!/usr/bin/env bash
# Where the nodes' CPU goes, per committed transaction, by stage.
#
# Runs `palisade-testnet bench` against the running local network under
# `perf record -a` with DWARF call graphs (the whole machine: every node process and the bench
# client), then `scripts/cpu_budget.py` sorts the node processes' samples
# into stages (RPC, admission, gossip, proposal, validation, execution,
# storage, consensus, kernel, other) by the frames on their stacks, and
# divides by the transactions the bench saw committed.
#
#   palisade-testnet up                      # first (PALISADE_TESTNET_DIR picks another network)
#   scripts/profile.sh [RATE] [DURATION_S]   # default 1000 tx/s for 20 s
#
# Needs perf (Debian: apt-get install linux-perf) and permission to profile
# the whole machine (root, or kernel.perf_event_paranoid <= -1). Writes
# target/profile/{bench.json,perf.data,budget.txt}.
set -euo pipefail

rate=${1:-1000}
duration=${2:-20}
out=${PROFILE_DIR:-target/profile}
testnet=${TESTNET_BIN:-target/release/palisade-testnet}
# Samples per second per CPU: enough for a budget, little enough not to
# load the machine it measures (each sample copies 16 KiB of stack: release
# builds keep no frame pointers, so stacks are unwound from DWARF).
freq=${PROFILE_FREQ:-99}

command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
[ -x "$testnet" ] || { echo "$testnet not built: cargo build --release -p palisade-testnet -p palisade-node" >&2; exit 1; }
mkdir -p "$out"

echo "profiling bench --rate $rate --duration ${duration}s (perf at $freq Hz on every CPU)" >&2
perf record -a --call-graph dwarf,16384 -F "$freq" -o "$out/perf.data" -- \
    "$testnet" bench --rate "$rate" --duration "${duration}s" --json >"$out/bench.json"

# One PID per file, without a trailing newline.
pids=$(for f in "${PALISADE_TESTNET_DIR:-.testnet}"/nodes/*/pid; do [ -f "$f" ] && printf '%s,' "$(cat "$f")"; done)
perf script -i "$out/perf.data" -F comm,pid,tid,ip,sym 2>/dev/null |
    python3 "$(dirname "$0")/cpu_budget.py" --bench "$out/bench.json" --pids "$pids" | tee "$out/budget.txt"
