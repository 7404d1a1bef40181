#!/usr/bin/env bash
# Builds the Python package into a fresh virtual environment and runs its
# pytest suite there, as a user would install it: `pip install ./python`.
# Arguments go to pytest (e.g. `python/test.sh -k stream`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/python-venv
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
    echo "python/test.sh: the Python package needs Python 3.9 or newer as \`$python\` (or set PYTHON)" >&2
    exit 2
fi
rm -rf "$venv"
if ! "$python" -m venv "$venv"; then
    echo "python/test.sh: \`$python -m venv\` failed; on Debian, apt-get install python3-venv" >&2
    exit 2
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet './python[test]'
# The tests drive the CLI too (`subrt ls` of the store Python writes to).
cargo build --quiet --bin subrt
export SUBRT_BIN="$PWD/target/debug/subrt"
# The report .ci/run checks: the suite ran in this venv, and passed.
report="$PWD/target/python-tests.xml"
rm -f "$report"
# From python/tests, not python/: the installed package is the one tested,
# not the source folder.
cd python/tests
exec "../../$venv/bin/pytest" -q -p no:cacheprovider --junitxml="$report" "$@"
