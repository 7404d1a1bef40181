#!/usr/bin/env bash
# The README's test command: the Rust suite, then the Python package built
# into a fresh virtual environment and its pytest suite.
set -euo pipefail
cd "$(dirname "$0")"
cargo test
python/test.sh
