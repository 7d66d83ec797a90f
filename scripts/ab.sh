#!/usr/bin/env bash
# Compares builds of palisade-node on this machine, interleaved, so that a
# machine whose speed drifts from hour to hour favours none of them.
#
#   scripts/ab.sh RATE DURATION_S DIR_A DIR_B [DIR_C ...]
#
# Each DIR holds a `palisade-node` binary (copy target/release/palisade-node
# there after each build), and may hold the `palisade-testnet` that drives
# it (a build whose bench speaks a method older nodes lack); otherwise
# target/release/palisade-testnet does. For each of ROUNDS rounds (default
# 2) and each binary in turn: a fresh network in $AB_NET (default
# target/ab-net) from the committed genesis, 10 s to settle, the idle CPU
# of its 16 node processes over 20 s, one `bench --rate RATE --duration
# DURATION_S`, down.
# One line per run on stdout.
set -euo pipefail

rate=$1; duration=$2; shift 2
rounds=${ROUNDS:-2}
default_testnet=${TESTNET_BIN:-target/release/palisade-testnet}
net=${AB_NET:-target/ab-net}
[ -x "$default_testnet" ] || { echo "$default_testnet not built: cargo build --release -p palisade-testnet" >&2; exit 1; }

# Summed user + system CPU ticks of the network's node processes.
ticks() {
    for f in "$net"/nodes/*/pid; do awk '{print $14 + $15}' "/proc/$(cat "$f")/stat"; done | paste -sd+ | bc
}

for round in $(seq "$rounds"); do
    for dir in "$@"; do
        export PALISADE_NODE_BIN=$dir/palisade-node PALISADE_TESTNET_DIR=$net
        testnet=$default_testnet
        [ -x "$dir/palisade-testnet" ] && testnet=$dir/palisade-testnet
        "$testnet" down >/dev/null 2>&1 || true
        rm -rf "$net"
        "$testnet" up >/dev/null
        sleep 10
        before=$(ticks); sleep 20; after=$(ticks)
        idle=$(echo "scale=1; ($after - $before) / 20 * 100 / $(getconf CLK_TCK)" | bc)
        result=$("$testnet" bench --rate "$rate" --duration "${duration}s" 2>/dev/null |
            grep -E 'committed|latency|node cpu' | tr -s ' ' | tr '\n' ' ')
        echo "$dir round $round: idle ${idle} % of a core |$result"
        "$testnet" down >/dev/null
    done
done
