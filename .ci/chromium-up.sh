#!/usr/bin/env bash
# The browser tests (tests/web) drive Debian's Chromium through Playwright; Playwright never
# downloads a browser of its own. Installs chromium + chromium-driver when missing (idempotent).
set -euo pipefail
missing=()
for pkg in chromium chromium-driver; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages; as root: apt-get install ${missing[*]}" >&2; exit 1
  fi
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
/usr/bin/chromium --version
