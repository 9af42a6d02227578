#!/usr/bin/env bash
# Installs everything the tests need and runs them: the README's test command, and CI's.
#   bash scripts/test.sh            # all tests
#   bash scripts/test.sh -k nb201   # extra arguments go to pytest
# System packages: graphviz (the `dot` program) and chromium (for tests/browser), via apt-get when
# they are missing.
# Python packages: nasnb[test] into .venv (created here; set NASNB_PYTHON to use another python).
set -euo pipefail
cd "$(dirname "$0")/.."

install_system() {  # $1 = command that must exist, $2 = Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "== installing $2 (apt-get)"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "$2" >/dev/null
  elif command -v brew >/dev/null 2>&1; then
    brew install "$2"
  else
    echo "!! $1 is missing and neither apt-get nor brew is here: install $2 by hand" >&2
  fi
}
install_system dot graphviz
bash scripts/install-browser.sh  # Debian's chromium for tests/browser (never a browser download)

if [ -n "${NASNB_PYTHON:-}" ]; then
  PY="$NASNB_PYTHON"
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PY=.venv/bin/python
fi
echo "== installing nasnb[test] into $("$PY" -c 'import sys; print(sys.prefix)')"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
echo "== running the tests"
# Two or more worker processes (pytest-xdist), one test file each at a time (--dist loadfile: a
# file's module fixtures, the browser tests' JupyterLab among them, start once). On CI's 2 cores this
# took the suite from 893 s to 496 s (benchmarks/README.md, "The test suite's time"). Extra
# arguments come after and win: `bash scripts/test.sh -n 0` runs the tests one by one.
exec "$PY" -m pytest -n auto --dist loadfile --durations=25 "$@"  # the 25 slowest, for the 15-minute budget
