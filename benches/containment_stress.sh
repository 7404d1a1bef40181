#!/usr/bin/env bash
# Containment under repetition: the two ways a session's processes used to
# escape, N times each (default 100), counting what survives.
#
#   1. `subrt run` is SIGKILLed while its command has a background child, a
#      setsid double fork, a nohup child and a foreground sleep;
#   2. a command whose setsid double fork outlives a timeout.
#
# Usage: benches/containment_stress.sh [N] [SUBRT]   (SUBRT: target/release/subrt)
# Not run by `cargo test`; its figures are in BENCHMARKS.md.
set -uo pipefail
N=${1:-100}
SUBRT=${2:-target/release/subrt}
[ -x "$SUBRT" ] || { echo "no $SUBRT: build it first (cargo build --release)" >&2; exit 2; }
export XDG_STATE_HOME=$(mktemp -d)
trap 'rm -rf "$XDG_STATE_HOME"' EXIT
base=$((300000 + ($$ % 1000) * 1000))

alive() { pgrep -f "^sleep $1\$" >/dev/null; }

survivors=0
for i in $(seq 1 "$N"); do
    a=$((base + 4 * i)); b=$((a + 1)); c=$((a + 2)); d=$((a + 3))
    out=$(mktemp)
    "$SUBRT" run --no-log -- "sleep $a >/dev/null 2>&1 & setsid sh -c 'sleep $b >/dev/null 2>&1 &'; nohup sleep $c >/dev/null 2>&1 & echo started; sleep $d" >"$out" &
    owner=$!
    for _ in $(seq 1 500); do grep -q started "$out" && break; sleep 0.01; done
    sleep 0.05
    kill -9 "$owner"; wait "$owner" 2>/dev/null
    sleep 0.2
    for s in $a $b $c $d; do
        if alive "$s"; then survivors=$((survivors + 1)); pkill -f "^sleep $s\$"; fi
    done
    rm -f "$out"
done
echo "SIGKILL of the owner, $N times, 4 processes each: $survivors survivors"

escaped=0
for i in $(seq 1 "$N"); do
    a=$((base + 4 * N + 4 + 2 * i)); b=$((a + 1))
    "$SUBRT" run --no-log --timeout 0.2 -- "setsid sh -c 'sleep $a >/dev/null 2>&1 &'; sleep $b" >/dev/null
    sleep 0.05
    for s in $a $b; do
        if alive "$s"; then escaped=$((escaped + 1)); pkill -f "^sleep $s\$"; fi
    done
done
echo "setsid double fork past a timeout, $N times: $escaped survivors"
[ "$survivors" -eq 0 ] && [ "$escaped" -eq 0 ]
