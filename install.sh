#!/usr/bin/env bash
# Install ticketbill next to a helpdesk. Idempotent: run it again after every update.
#
#   ./install.sh          venv in .venv, package, .env from .env.example, database migrations
#   ./install.sh --demo   the same, then the whole flow against the built-in Zammad sandbox
#   ./install.sh --test   the same with test extras, then the test suite (SQLite + PostgreSQL)
#   ./install.sh --deps   only the venv with test extras (for CI scripts that need the package)
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-}"
case "$mode" in
  ""|--demo|--test|--deps) ;;
  *) echo "usage: ./install.sh [--demo|--test|--deps]" >&2; exit 2 ;;
esac

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  # Debian packages the Python side cannot bring itself; only when missing, only as root.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages; as root: apt-get install ${missing[*]}" >&2; return 1
  fi
  say "apt-get install ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_bin() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "ticketbill needs Python 3.11 or newer" >&2; exit 1
}

PY=$(python_bin)
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv || exit 1
fi
# DejaVu: the invoice font (embedded into every PDF; covers all European Latin letters).
# Without it invoices use ReportLab's bundled Vera, which lacks some letters (ő, ą, ń, …).
apt_install fonts-dejavu-core || echo "continuing with the bundled Vera font" >&2
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi

extras=""
if [ "$mode" = "--test" ] || [ "$mode" = "--deps" ]; then extras="[test]"; fi
say "installing ticketbill$extras into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".$extras"

if [ ! -f .env ] && [ "$mode" = "" ]; then
  cp .env.example .env
  say "created .env from .env.example: set HELPDESK_URL, HELPDESK_TOKEN and the seller's data"
fi

case "$mode" in
  --deps)
    ;;
  --demo)
    exec .venv/bin/ticketbill demo
    ;;
  --test)
    exec .venv/bin/python -m pytest "${@:2}"
    ;;
  "")
    if .venv/bin/ticketbill init; then
      say "installed. Next: .venv/bin/ticketbill register && .venv/bin/ticketbill serve"
    else
      say "installed, but .env is not complete yet: edit it and run ./install.sh again"
    fi
    ;;
esac
