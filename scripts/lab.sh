#!/usr/bin/env bash
# Installs nasnb with JupyterLab into .venv and opens the notebooks: the README's main command.
#   bash scripts/lab.sh                             # then open the URL JupyterLab prints
#   bash scripts/lab.sh --no-browser --port 8889    # extra arguments go to jupyter lab (via `nasnb lab`)
# As root (a container, a cloud VM) `nasnb lab` adds --allow-root, without which JupyterLab refuses.
# graphviz (the `dot` program) draws the cells; without it nasnb draws them with matplotlib.
# Environment:
#   NASNB_PYTHON=/path/to/python    use that Python (its environment) instead of creating .venv
#   NASNB_SKIP_INSTALL=1            skip `pip install -e .[lab]`: nasnb's dependencies and JupyterLab
#                                   are already there (nasnb itself is imported from this checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v dot >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq graphviz >/dev/null || true
  else
    echo "(optional) install graphviz for the papers' style of cell drawings: apt-get/brew/conda install graphviz"
  fi
fi
if [ -n "${NASNB_PYTHON:-}" ]; then PY="$NASNB_PYTHON"; else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PY=.venv/bin/python
fi
if [ "${NASNB_SKIP_INSTALL:-0}" != 1 ]; then
  "$PY" -m pip install -q --disable-pip-version-check -e ".[lab]"
fi
# `-m` from the checkout's root: this checkout's nasnb, whichever one is installed.
exec "$PY" -m nasnb.cli lab --dir notebooks "$@"
