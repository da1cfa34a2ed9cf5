#!/usr/bin/env bash
# Chromium for the browser test of the widgets (tests/browser), got the way this machine allows, so that `make test`
# is one command on a fresh machine:
#   1. one already there: $PPAD_CHROMIUM, chromium, chromium-browser, google-chrome, or Playwright's own download;
#   2. as root with apt-get (Debian, Ubuntu): `apt-get install -y chromium`, after `apt-get update` when the lists lack it;
#   3. otherwise Playwright's own browser download (`python -m playwright install chromium`, into ~/.cache/ms-playwright);
#   4. when none of these works: one line that says how to get it, and exit 1.
# PPAD_SKIP_BROWSER=1 skips it (and the browser test). Every outside command is found on PATH, and PYTHON names the
# Python whose Playwright is used (the kit's .venv under make), so tests can run this script against fake commands.
set -uo pipefail
PYTHON="${PYTHON:-python3}"

if [ -n "${PPAD_SKIP_BROWSER:-}" ]; then echo "Chromium: not needed (PPAD_SKIP_BROWSER is set)"; exit 0; fi

playwright_chromium() {  # the path of Playwright's own Chromium when it has been downloaded, else nothing
    "$PYTHON" -c 'import os
from playwright.sync_api import sync_playwright
with sync_playwright() as p: path = p.chromium.executable_path
if os.path.isfile(path): print(path)' 2>/dev/null
}

found() {  # the Chromium there is now, if any
    if [ -n "${PPAD_CHROMIUM:-}" ] && [ -f "$PPAD_CHROMIUM" ]; then echo "$PPAD_CHROMIUM"; return 0; fi
    for name in chromium chromium-browser google-chrome; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    done
    local own; own="$(playwright_chromium)"; [ -n "$own" ] && echo "$own"
}

report() { local path; path="$(found)" && [ -n "$path" ] && echo "Chromium: $path ($1)"; }

report "found" && exit 0

if [ "$(id -u 2>/dev/null)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Chromium is missing: installing it with apt-get (Debian/Ubuntu), for the browser test of the widgets"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
    report "installed with apt-get" && exit 0
fi

echo "Chromium is missing: downloading Playwright's own Chromium (python -m playwright install chromium)"
"$PYTHON" -m playwright install chromium >/dev/null 2>&1
report "downloaded by Playwright" && exit 0

echo "Chromium not found and could not be installed here: install it (Debian/Ubuntu: sudo apt-get install -y chromium; elsewhere: $PYTHON -m playwright install chromium), set PPAD_CHROMIUM to a Chromium or Chrome binary, or set PPAD_SKIP_BROWSER=1 to skip the browser test knowingly." >&2
exit 1
