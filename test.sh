#!/usr/bin/env bash
# The README's test command: the Rust suite, then the Python package built
# into a fresh virtual environment and its pytest suite. Every part runs
# whatever an earlier one did; what failed is listed at the end.
#
# SUBRT_SKIP=slurm,docker leaves out the Slurm or Docker tests (even with
# CI set, where a missing cluster or daemon is otherwise a failure).
set -uo pipefail
cd "$(dirname "$0")"

# The Slurm tests submit only to the cluster of assets/slurm/cluster.sh,
# never to another one that answers on this machine.
export SLURM_CONF=/run/subrt-slurm/slurm.conf

failed=()
# subrt and its Docker agent (the Python crate is an extension module,
# tested through pytest below).
cargo test --no-fail-fast --workspace --exclude subrt-python || failed+=("cargo test")
python/test.sh || failed+=("python/test.sh")
if ((${#failed[@]})); then
    echo "test.sh: failed: ${failed[*]}" >&2
    exit 1
fi
