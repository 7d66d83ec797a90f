#!/usr/bin/env python3
"""A per-transaction CPU budget of the nodes, by stage, from a whole-machine
profile (see scripts/profile.sh).

Reads `perf script -F comm,pid,tid,ip,sym` on stdin, keeps the samples of
the node processes (--pids), and puts each in the first stage, in the order
of STAGES, one of whose patterns names a frame of its stack. The stage
shares are then scaled to the nodes' CPU per committed transaction that the
bench measured from /proc (`node_cpu_us_per_tx` in --bench), so the budget
adds up to the bench's own figure.
"""

import argparse
import json
import re
import sys
from collections import Counter

# First match wins: storage before execution (state reads under a block's
# execution are storage), admission and validation before the signature
# code both use, the network stack last among user code.
STAGES = [
    # Generic parameters name RocksChain on every shard-thread frame, so
    # storage is matched on the functions themselves.
    ("storage", r"rocksdb::|ShardStore as|ShardStore>::|store::Store>::|jmt::|save_safety_state"),
    ("admission", r"Mempool|submit_tx|on_gossiped_txs|insert_encoded"),
    ("proposal", r"build_block|proposal_if_due|maybe_propose"),
    ("validation", r"verify_signatures|verify_batch|SignedMessage.*verify|CommitCertificate.*verify"),
    ("execution", r"apply_block|execute|Overlay|tree::"),
    ("rpc", r"jsonrpsee|hyper|serde_json|hex::|rpc::methods"),
    ("gossip", r"gossipsub|yamux|noise|snow::|libp2p|prost|quick_protobuf|ring::|chacha|poly1305"),
    ("consensus", r"palisade_consensus|Replica"),
    ("memory", r"malloc|\bfree\b|cfree|memmove|memcpy|realloc|_int_"),
]


def samples(lines):
    """Yields (pid, [frame symbols, leaf first]) per sample."""
    pid, frames = None, []
    for line in lines:
        if not line.strip():
            if pid is not None:
                yield pid, frames
            pid, frames = None, []
        elif line[0].isspace():
            # "ip sym": kernel frames are told by their address.
            parts = line.split(None, 1)
            ip = parts[0] if parts else ""
            sym = parts[1].strip() if len(parts) > 1 else ""
            frames.append(("[k] " if ip.startswith("ffffffff") else "") + sym)
        else:
            # "comm pid/tid" or "comm pid tid": the pid is the first number
            # after the command name (which may hold spaces).
            numbers = re.findall(r"\s(\d+)(?:/\d+)?", line)
            pid = int(numbers[0]) if numbers else -1
            frames = []
    if pid is not None:
        yield pid, frames


def stage_of(frames, compiled):
    joined = "\n".join(frames)
    for name, pattern in compiled:
        if pattern.search(joined):
            return name
    if frames and frames[0].startswith("[k]"):
        return "kernel"
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bench", required=True, help="the bench's --json output")
    parser.add_argument("--pids", required=True, help="the node processes, comma-separated")
    args = parser.parse_args()
    pids = {int(p) for p in args.pids.split(",") if p.strip()}
    if not pids:
        sys.exit("no node PIDs: is the network up?")
    with open(args.bench) as f:
        bench = json.load(f)
    per_tx = bench.get("node_cpu_us_per_tx")
    compiled = [(name, re.compile(pattern)) for name, pattern in STAGES]
    counts, total, others = Counter(), 0, Counter()
    for pid, frames in samples(sys.stdin):
        if pid not in pids:
            continue
        stage = stage_of(frames, compiled)
        counts[stage] += 1
        total += 1
        if stage == "other" and frames:
            others[frames[0]] += 1
    if total == 0:
        sys.exit("no samples of the node processes")
    print(f"bench: {bench.get('committed_tps', 0):.1f} tx/s committed, "
          f"{bench.get('committed', 0)} transactions, node CPU "
          f"{per_tx:.0f} µs/tx" if per_tx else "bench: nothing committed")
    print(f"{total} samples of {len(pids)} node processes")
    print(f"{'stage':<12} {'share':>7} {'µs/tx':>9}")
    for name, n in counts.most_common():
        share = n / total
        us = f"{share * per_tx:9.1f}" if per_tx else "        -"
        print(f"{name:<12} {share * 100:6.1f}% {us}")
    if others:
        print("\nhottest leaf frames left in 'other':")
        for frame, n in others.most_common(12):
            print(f"  {n / total * 100:5.1f}%  {frame[:100]}")


if __name__ == "__main__":
    main()
