#!/usr/bin/env bash
# Run the test suite (what CI runs). Extra arguments go to pytest, e.g.  scripts/test.sh -m "not slow"
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent success.
set -uo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "ERROR: pytest collected no tests (exit code 5) - treating as a failure" >&2
  exit 1
fi
exit "$rc"
