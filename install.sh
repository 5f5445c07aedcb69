#!/usr/bin/env bash
# Install ticketbill next to a helpdesk. Idempotent: run it again after every update (git pull).
#
#   ./install.sh                 venv in .venv, package, .env from .env.example, database migrations
#                                (after an update: the new migrations; with the services installed,
#                                they are stopped for the migration and started again)
#   ./install.sh --demo [ARGS]   the same, then the whole flow against the built-in Zammad sandbox
#                                (ARGS go to `ticketbill demo`, e.g. --port 8500 or --helpdesk otrs)
#   ./install.sh --test [ARGS]   the same with test extras, then the test suite (ARGS go to pytest)
#   ./install.sh --deps          only the venv with test extras (for CI scripts that need the package)
#   sudo ./install.sh --service  production install as systemd services: system user `ticketbill`,
#                                data directory owned by it, units ticketbill-web + ticketbill-sync
#
# pip runs only when pyproject.toml, the Python version or the extras changed since the last
# install (a stamp in .venv), so a second run starts at once.
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-}"
case "$mode" in
  ""|--demo|--test|--deps|--service) ;;
  *) echo "usage: ./install.sh [--demo [ARGS]|--test [ARGS]|--deps|--service]" >&2; exit 2 ;;
esac

SERVICE_USER="${TICKETBILL_USER:-ticketbill}"
UNIT_DIR=/etc/systemd/system
STAMP=.venv/.ticketbill-install

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

env_value() {
  # KEY's value from the environment, else from .env (the same precedence as the sidecar's)
  local key=$1
  if [ -n "${!key:-}" ]; then echo "${!key}"; return; fi
  [ -f .env ] && sed -n -E "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*['\"]?([^'\"]*)['\"]?[[:space:]]*$/\1/p" .env | tail -n 1
}

if [ "$mode" = --service ]; then
  [ "$(id -u)" -eq 0 ] || { echo "--service installs system units: run it as root (sudo ./install.sh --service)" >&2; exit 1; }
  command -v systemctl >/dev/null 2>&1 || { echo "--service needs systemd (systemctl not found)" >&2; exit 1; }
fi

PY=$(python_bin)
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv || exit 1
fi
# DejaVu: the invoice font (embedded into every PDF; covers all European Latin letters).
# Without it invoices use ReportLab's bundled Vera, which lacks some letters (ő, ą, ń, …).
apt_install fonts-dejavu-core || echo "continuing with the bundled Vera font" >&2
# pg_dump/pg_restore for `ticketbill backup`/`restore` when the database is PostgreSQL
case "$(env_value DATABASE_URL)" in
  postgres*) apt_install postgresql-client || echo "without postgresql-client, ticketbill backup cannot dump PostgreSQL" >&2 ;;
esac
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi

extras=""
if [ "$mode" = "--test" ] || [ "$mode" = "--deps" ]; then extras="[test]"; fi
# what the installed packages depend on: the dependency list, the interpreter, the extras
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])')"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$have" = "$want $extras" ] || { [ -z "$extras" ] && [ "$have" = "$want [test]" ]; }; then
  say "ticketbill$extras is installed and pyproject.toml unchanged: pip skipped"
else
  say "installing ticketbill$extras into .venv"
  rm -f "$STAMP"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".$extras"
  echo "$want $extras" > "$STAMP"
fi

if [ ! -f .env ] && { [ "$mode" = "" ] || [ "$mode" = --service ]; }; then
  cp .env.example .env
  chmod 600 .env
  say "created .env from .env.example: set HELPDESK_URL, HELPDESK_TOKEN and the seller's data"
fi

services_installed() { [ -f "$UNIT_DIR/ticketbill-web.service" ] && [ -f "$UNIT_DIR/ticketbill-sync.service" ]; }

as_service_user() { runuser -u "$SERVICE_USER" -- "$@"; }

install_units() {
  # the units of this checkout and .env; systemd reads them after daemon-reload
  .venv/bin/ticketbill --env-file .env service units --user "$SERVICE_USER" --out-dir "$UNIT_DIR" >/dev/null
  systemctl daemon-reload
}

prepare_service_user() {
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    say "creating system user $SERVICE_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  # .env holds the helpdesk token and the database password: root writes it, the service reads it
  chown "root:$SERVICE_USER" .env
  chmod 640 .env
  local path
  while IFS= read -r path; do
    mkdir -p "$path"
    chown -R "$SERVICE_USER:$SERVICE_USER" "$path"
    chmod 750 "$path"
  done < <(.venv/bin/ticketbill --env-file .env service paths)
}

case "$mode" in
  --deps)
    ;;
  --demo)
    exec .venv/bin/ticketbill demo "${@:2}"
    ;;
  --test)
    exec .venv/bin/python -m pytest "${@:2}"
    ;;
  --service)
    prepare_service_user
    if ! as_service_user .venv/bin/ticketbill --env-file .env init; then
      say "installed, but the settings are not complete yet: edit .env and run sudo ./install.sh --service again"
      exit 1
    fi
    install_units
    systemctl enable ticketbill-sync.service ticketbill-web.service
    systemctl restart ticketbill-sync.service ticketbill-web.service
    say "running as $SERVICE_USER: systemctl status 'ticketbill*'; journalctl -u 'ticketbill*' -f"
    say "ready?  curl -s http://127.0.0.1:8400/readyz   (then put a TLS proxy in front: README, Operations)"
    ;;
  "")
    if services_installed && [ "$(id -u)" -ne 0 ]; then
      echo "ticketbill runs as systemd services here: update with sudo ./install.sh (stops them for the migration)" >&2
      exit 1
    elif services_installed; then
      # an update of a service install: no run may bill while the schema changes
      say "stopping ticketbill-web and ticketbill-sync for the migration"
      systemctl stop ticketbill-web.service ticketbill-sync.service
      prepare_service_user
      as_service_user .venv/bin/ticketbill --env-file .env init
      install_units
      systemctl start ticketbill-sync.service ticketbill-web.service
      say "migrated and started again: journalctl -u 'ticketbill*' -f"
    elif .venv/bin/ticketbill init; then
      say "installed. Next: .venv/bin/ticketbill register && .venv/bin/ticketbill serve (or: sudo ./install.sh --service)"
    else
      say "installed, but .env is not complete yet: edit it and run ./install.sh again"
    fi
    ;;
esac
