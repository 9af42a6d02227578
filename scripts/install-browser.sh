#!/usr/bin/env bash
# Installs the browser the real-browser tests (tests/browser/) drive: Debian's chromium.
#   bash scripts/install-browser.sh
# Idempotent: returns at once when /usr/bin/chromium is already there.
# Playwright (the Python package, from pip via nasnb[test]) drives this system browser through
# executable_path=/usr/bin/chromium. We never run `playwright install`: it downloads its own browser,
# which needs the internet and a CDN that machines like ours cannot reach.
set -euo pipefail

CHROMIUM="${NASNB_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "== chromium already installed: $CHROMIUM"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "!! $CHROMIUM is missing and apt-get is not here: install chromium with your package manager" >&2
  echo "   (brew install --cask chromium, dnf install chromium, ...) and set NASNB_CHROMIUM to its path." >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "!! installing chromium needs root: run this script as root or install sudo" >&2
    exit 1
  fi
fi

echo "== installing chromium (apt-get; about 35 s)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
[ -x "$CHROMIUM" ] || { echo "!! apt-get finished but $CHROMIUM is still missing" >&2; exit 1; }
echo "== chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
