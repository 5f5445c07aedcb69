#!/bin/bash
# znuny-up.sh - bring up a real Znuny 6.5 (Debian `otrs2` from bookworm-backports, PostgreSQL,
# plackup/Starlet, no Apache) on 127.0.0.1 for ticketbill's OTRS/Znuny integration tests.
#
# Why a real Znuny and not only the sandbox: the connector must survive the GenericInterface's
# quirks (errors as HTTP 200 with an `Error` object, `{}` for an empty search, string vs number
# ids, dynamic fields only via the console) exactly as Znuny has them.
#
# Why no `apt-get install otrs2`: its maintainer scripts configure Apache on port 80 and
# dbconfig. We install only its dependencies, unpack the package with `dpkg-deb -x` and build a
# self-contained tree (real copies instead of the Debian symlinks into /etc and /var/lib).
#
# Idempotent: a second run checks each step cheaply (packages, tree, database, fixtures, the
# billing fields of the current connector) and only starts the server if it does not answer.
# Non-interactive; run as root (the console itself runs as the system user `otrs`, it refuses
# root).
#
#   bash .ci/znuny-up.sh          # install if needed, set up, start, write the env file
#   bash .ci/znuny-up.sh stop     # stop the server this script started
#   bash .ci/znuny-up.sh purge    # stop, drop the database and the tree (next run is cold)
#
# Environment (all optional):
#   ZNUNY_PORT=8490                        port on 127.0.0.1
#   ZNUNY_HOME=/opt/ticketbill-znuny       the self-contained Znuny tree
#   ZNUNY_STATE=/var/tmp/ticketbill-znuny  package cache, logs, pid file, field YAML
#   ZNUNY_ENV_FILE=/tmp/ticketbill-znuny.env  where the connection details are written
#   ZNUNY_DB=znuny                         PostgreSQL role and database (127.0.0.1:5432, trust)
#   ZNUNY_PASSWORD=ticketbill-Secret1      password of the API agent `billing` (rw on the group
#                                          `users` of the billed queues, nothing else)
#
# The env file (shell/dotenv syntax) holds: ZNUNY_URL (scheme://host:port), ZNUNY_GI_PATH
# (/otrs/nph-genericinterface.pl), ZNUNY_WEBSERVICE (Znuny example routes),
# ZNUNY_CLASSIC_WEBSERVICE (classic routes), ZNUNY_TA_WEBSERVICE, ZNUNY_USER,
# ZNUNY_PASSWORD, ZNUNY_AGENTS (login:password pairs, comma separated), ZNUNY_CUSTOMER_USERS
# (login:CustomerID pairs; each customer's password is `<login>-Secret1`), ZNUNY_CUSTOMER_COMPANIES, ZNUNY_HOME, ZNUNY_CONSOLE, ZNUNY_DSN,
# ZNUNY_VERSION. Tests use ZNUNY_DSN only to read what the API cannot show.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ZNUNY_PORT=${ZNUNY_PORT:-8490}
ZNUNY_URL="http://127.0.0.1:${ZNUNY_PORT}"
ZNUNY_HOME=${ZNUNY_HOME:-/opt/ticketbill-znuny}
ZNUNY_STATE=${ZNUNY_STATE:-/var/tmp/ticketbill-znuny}
ZNUNY_ENV_FILE=${ZNUNY_ENV_FILE:-/tmp/ticketbill-znuny.env}
ZNUNY_DB=${ZNUNY_DB:-znuny}
ZNUNY_PASSWORD=${ZNUNY_PASSWORD:-ticketbill-Secret1}
GI_PATH=/otrs/nph-genericinterface.pl
WEBSERVICE=GenericTicketConnectorREST
TA_WEBSERVICE=TimeAccountingREST
CLASSIC_WEBSERVICE=GenericTicketConnectorRESTClassic
SYSTEM_USER=otrs
BILLING_GROUP=users   # the group of the queues holding billable tickets
AGENTS=(alice:alice-Secret1 bob:bob-Secret1)
# CustomerID|name|street|zip|city|country (Znuny's English country name); the last one has no
# address, which the customer export must skip and name.
COMPANIES=("ACME|ACME Maschinenbau GmbH|Werkstraße 5|10115|Berlin|Germany"
           "GLOBEX|Globex Logistik AG|Am Sandtorkai 2|20457|Hamburg|Germany"
           "INITECH|Initech Software KG|||Köln|")
CUSTOMER_USERS=(cust1:ACME cust2:ACME cust3:GLOBEX)
SOURCES_FILE=/etc/apt/sources.list.d/ticketbill-bookworm-backports.sources
# What `apt-get install otrs2` would pull in, minus Apache, aspell and procmail; plus the PSGI
# stack (the package expects Apache/mod_perl) and REST::Client (Debian unbundles cpan-lib,
# without it every GenericInterface call fails with "Can't locate REST/Client.pm").
EXCLUDED_DEPS='^(apache2.*|libapache2-mod-perl2|libapache.*-perl|libapr.*|aspell.*|libaspell.*|procmail|otrs2)$'
EXTRA_DEPS=(libcgi-emulate-psgi-perl libplack-perl librest-client-perl starlet
            libdbd-pg-perl postgresql-client curl)
PSQL_ADMIN=(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
PSQL=(psql -h 127.0.0.1 -p 5432 -U "$ZNUNY_DB" -d "$ZNUNY_DB" -v ON_ERROR_STOP=1 -qtA)

mkdir -p "$ZNUNY_STATE"
PID_FILE="$ZNUNY_STATE/plackup.pid"

NAME=znuny-up
# shellcheck source=server-lib.sh
source "$(dirname "$0")/server-lib.sh"

session_ok() {
    # True when SessionCreate of the API agent answers with a SessionID.
    curl -s -m 20 -X POST -H 'Content-Type: application/json' \
        -d "{\"UserLogin\":\"billing\",\"Password\":\"$ZNUNY_PASSWORD\"}" \
        "$ZNUNY_URL$GI_PATH/Webservice/$WEBSERVICE/Session" 2>/dev/null | grep -q '"SessionID"'
}

pg_up() {
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL does not answer on 127.0.0.1:5432"
}

console() {
    # The Znuny console as the system user (it refuses root), from the tree.
    (cd "$ZNUNY_HOME" && runuser -u "$SYSTEM_USER" -- perl bin/otrs.Console.pl "$@" --no-ansi)
}

sql() { "${PSQL[@]}" -c "$1"; }

case "${1:-up}" in
    stop) stop_server; exit 0 ;;
    purge)
        stop_server
        pg_up
        "${PSQL_ADMIN[@]}" -c "DROP DATABASE IF EXISTS \"$ZNUNY_DB\"" >/dev/null
        rm -rf "$ZNUNY_HOME" "$ZNUNY_ENV_FILE"
        echo "znuny-up: purged database $ZNUNY_DB and $ZNUNY_HOME"
        exit 0 ;;
    up) ;;
    *) die "usage: $0 [up|stop|purge]" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (installs packages, creates the system user)"

# -- packages ------------------------------------------------------------------------------
if ! perl -MREST::Client -MCGI::Emulate::PSGI -MStarlet -MDBD::Pg -MYAML::XS -MText::CSV_XS \
        -MTemplate -e1 2>/dev/null || ! command -v plackup >/dev/null; then
    if [ ! -f "$SOURCES_FILE" ]; then
        uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        cat >"$SOURCES_FILE" <<EOF
Types: deb
URIs: ${uri:-http://deb.debian.org/debian}
Suites: bookworm-backports
Components: main non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    if ! apt-cache policy otrs2 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        "${APT[@]}" update >/dev/null
    fi
    mapfile -t deps < <("${APT[@]}" -s install otrs2 2>/dev/null | awk '/^Inst /{print $2}' \
        | grep -vE "$EXCLUDED_DEPS" || true)
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends \
        "${deps[@]}" "${EXTRA_DEPS[@]}" >"$ZNUNY_STATE/apt.log" 2>&1 \
        || { tail -20 "$ZNUNY_STATE/apt.log"; die "apt-get install failed"; }
    if dpkg-query -W -f '${Status}\n' apache2 2>/dev/null | grep -q 'install ok'; then
        die "apache2 got installed; the dependency filter is wrong"
    fi
fi
step "packages"

# -- the self-contained tree ---------------------------------------------------------------
if [ ! -f "$ZNUNY_HOME/RELEASE" ]; then
    pkg="$ZNUNY_STATE/pkg"
    mkdir -p "$pkg"
    if ! ls "$pkg"/otrs2_*.deb >/dev/null 2>&1; then
        (cd "$pkg" && "${APT[@]}" download otrs2 >/dev/null 2>&1) || die "apt-get download otrs2 failed"
    fi
    rm -rf "$pkg/root" "$ZNUNY_HOME.new"
    deb=$(ls "$pkg"/otrs2_*.deb | sort -V | tail -n 1)
    dpkg-deb -x "$deb" "$pkg/root"
    cp -a "$pkg/root/usr/share/otrs" "$ZNUNY_HOME.new"
    dpkg-deb -f "$deb" Version >"$ZNUNY_HOME.new/DEBIAN_VERSION"
    tree="$ZNUNY_HOME.new"
    # Replace the Debian symlinks (into /var/lib/otrs and /etc/otrs) with real copies.
    rm -f "$tree/var" "$tree/Kernel/Config/Files" "$tree/Kernel/Config/Backups" \
          "$tree/Kernel/Config.pm" "$tree/Kernel/Config/GenericAgent.pm"
    cp -a "$pkg/root/var/lib/otrs" "$tree/var"
    rm -f "$tree/var/run" "$tree/var/spool"
    mkdir -p "$tree/var/run" "$tree/var/spool" "$tree/var/tmp" "$tree/var/log" \
             "$tree/var/sessions" "$tree/var/article"
    mv "$tree/var/Config/Files" "$tree/Kernel/Config/Files"
    mv "$tree/var/Config/Backups" "$tree/Kernel/Config/Backups"
    rmdir "$tree/var/Config"
    cat >"$tree/Kernel/Config/GenericAgent.pm" <<'EOF'
package Kernel::Config::GenericAgent;
use strict;
use warnings;
our @ISA = ();
our %Jobs = ();
1;
EOF
    mv "$tree" "$ZNUNY_HOME"
fi
# Rewritten on every run so a changed port, database or password takes effect.
cat >"$ZNUNY_HOME/Kernel/Config.pm.new" <<EOF
package Kernel::Config;
# Written by ticketbill .ci/znuny-up.sh: a test Znuny on PostgreSQL, no mail, no Apache.
use strict;
use warnings;
use utf8;

sub Load {
    my \$Self = shift;
    \$Self->{DatabaseHost} = '127.0.0.1';
    \$Self->{Database}     = '$ZNUNY_DB';
    \$Self->{DatabaseUser} = '$ZNUNY_DB';
    \$Self->{DatabasePw}   = '';
    \$Self->{DatabaseDSN}  = "DBI:Pg:dbname=$ZNUNY_DB;host=127.0.0.1;port=5432;";
    \$Self->{Home}         = '$ZNUNY_HOME';
    \$Self->{SecureMode}   = 1;
    \$Self->{CheckMXRecord}       = 0;
    \$Self->{CheckEmailAddresses} = 0;
    \$Self->{SendmailModule}      = 'Kernel::System::Email::DoNotSendEmail';
    \$Self->{LogModule}           = 'Kernel::System::Log::File';
    \$Self->{'LogModule::LogFile'} = '$ZNUNY_STATE/znuny.log';
    \$Self->{'Ticket::Frontend::AccountTime'} = 1;
    return 1;
}

use Kernel::Config::Defaults;    # import Translatable()
use parent qw(Kernel::Config::Defaults);

1;
EOF
mv "$ZNUNY_HOME/Kernel/Config.pm.new" "$ZNUNY_HOME/Kernel/Config.pm"
id -u "$SYSTEM_USER" >/dev/null 2>&1 \
    || useradd --system --home-dir "$ZNUNY_HOME" --no-create-home --shell /bin/bash "$SYSTEM_USER"
touch "$ZNUNY_STATE/znuny.log"
chown "$SYSTEM_USER" "$ZNUNY_STATE/znuny.log"
if [ "$(stat -c %U "$ZNUNY_HOME/Kernel/Config.pm")" != "$SYSTEM_USER" ] \
        || [ -n "$(find "$ZNUNY_HOME" -maxdepth 2 ! -user "$SYSTEM_USER" -print -quit)" ]; then
    chown -R "$SYSTEM_USER:" "$ZNUNY_HOME"
fi
step "tree $ZNUNY_HOME"

# -- database ------------------------------------------------------------------------------
pg_up
if ! "${PSQL_ADMIN[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='$ZNUNY_DB'" | grep -q 1; then
    "${PSQL_ADMIN[@]}" -c "CREATE ROLE \"$ZNUNY_DB\" LOGIN" >/dev/null
fi
if ! "${PSQL_ADMIN[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$ZNUNY_DB'" | grep -q 1; then
    "${PSQL_ADMIN[@]}" >/dev/null \
        -c "CREATE DATABASE \"$ZNUNY_DB\" OWNER \"$ZNUNY_DB\" ENCODING 'UTF8' TEMPLATE template0"
fi
"${PSQL[@]}" -c 'SELECT 1' >/dev/null 2>&1 \
    || die "cannot log in as $ZNUNY_DB on 127.0.0.1:5432" \
           "(pg_hba.conf must trust loopback; see .ci/postgres-up.sh)"
if [ "$(sql "SELECT count(*) FROM pg_tables WHERE tablename='ticket'")" = 0 ]; then
    for part in schema initial_insert schema-post; do
        "${PSQL[@]}" -f "$ZNUNY_HOME/scripts/database/$part.postgresql.sql" >/dev/null 2>"$ZNUNY_STATE/db-$part.log" \
            || { tail -5 "$ZNUNY_STATE/db-$part.log"; die "loading $part.postgresql.sql failed"; }
    done
fi
step "database $ZNUNY_DB"

# -- configuration -------------------------------------------------------------------------
if [ ! -f "$ZNUNY_HOME/Kernel/Config/Files/ZZZAAuto.pm" ]; then
    console Maint::Config::Rebuild >/dev/null
fi
step "config rebuild"

# -- fixtures: agents, customers, web services, billing fields -----------------------------
exists() { [ "$(sql "$1")" != 0 ]; }
# The sidecar's agent is least-privileged, as the README tells the admin: rw on the group of
# the billed queues (users: Raw, Misc, ...), no admin, nothing else. A membership an older
# version of this script granted is removed (the console can add memberships, not remove
# them), and Znuny's caches are cleared so the running server sees the change.
if ! exists "SELECT count(*) FROM users WHERE login='billing'"; then
    console Admin::User::Add --user-name billing --first-name Billing --last-name Agent \
        --email-address billing@ticketbill.test --password "$ZNUNY_PASSWORD" \
        --group "$BILLING_GROUP" >/dev/null
fi
extra_grants="SELECT count(*) FROM group_user gu JOIN users u ON u.id = gu.user_id
    JOIN permission_groups g ON g.id = gu.group_id
    WHERE u.login = 'billing' AND NOT (g.name = '$BILLING_GROUP' AND gu.permission_key = 'rw')"
if exists "$extra_grants"; then
    sql "DELETE FROM group_user gu USING permission_groups g
         WHERE g.id = gu.group_id AND gu.user_id = (SELECT id FROM users WHERE login = 'billing')
           AND NOT (g.name = '$BILLING_GROUP' AND gu.permission_key = 'rw')" >/dev/null
    console Maint::Cache::Delete >/dev/null
fi
if ! exists "SELECT count(*) FROM group_user gu JOIN users u ON u.id = gu.user_id
        JOIN permission_groups g ON g.id = gu.group_id
        WHERE u.login = 'billing' AND g.name = '$BILLING_GROUP' AND gu.permission_key = 'rw'"; then
    console Admin::Group::UserLink --user-name billing --group-name "$BILLING_GROUP" \
        --permission rw >/dev/null
fi
for pair in "${AGENTS[@]}"; do
    login=${pair%%:*}; password=${pair#*:}
    if ! exists "SELECT count(*) FROM users WHERE login='$login'"; then
        first=${login^}
        console Admin::User::Add --user-name "$login" --first-name "$first" --last-name Agent \
            --email-address "$login@ticketbill.test" --password "$password" --group users >/dev/null
    fi
done
companies_changed=0
for company in "${COMPANIES[@]}"; do
    IFS='|' read -r cid name street zip city country <<<"$company"
    if ! exists "SELECT count(*) FROM customer_company WHERE customer_id='$cid'"; then
        console Admin::CustomerCompany::Add --customer-id "$cid" --name "$name" --city "$city" >/dev/null
    fi
    # Address fields (companies made by an older run have none); the console cannot update.
    if exists "SELECT count(*) FROM customer_company WHERE customer_id='$cid' AND
            (coalesce(street,'') <> '$street' OR coalesce(zip,'') <> '$zip'
             OR coalesce(country,'') <> '$country')"; then
        sql "UPDATE customer_company SET street='$street', zip='$zip', country='$country'
             WHERE customer_id='$cid'" >/dev/null
        companies_changed=1
    fi
done
[ "$companies_changed" = 0 ] || console Maint::Cache::Delete >/dev/null
for pair in "${CUSTOMER_USERS[@]}"; do
    login=${pair%%:*}; cid=${pair#*:}
    if ! exists "SELECT count(*) FROM customer_user WHERE login='$login'"; then
        console Admin::CustomerUser::Add --user-name "$login" --first-name "${login^}" \
            --last-name "$cid" --email-address "$login@${cid,,}.test" --customer-id "$cid" \
            --password "$login-Secret1" >/dev/null
    fi
done
# The classic route set (OTRS 6, pyotrs: `GET /Ticket` search, `/TicketHistory/:TicketID`) is
# not shipped in the Debian package; derive it from the example YAML.
examples="$ZNUNY_HOME/var/webservices/examples"
perl -0pe 's{- POST\n(\s+)Route: /Ticket/Search}{- GET\n$1Route: /Ticket};
           s{Route: /Ticket/History/:TicketID}{Route: /TicketHistory/:TicketID}' \
    "$examples/$WEBSERVICE.yml" >"$ZNUNY_STATE/$CLASSIC_WEBSERVICE.yml"
grep -q 'Route: /Ticket$' "$ZNUNY_STATE/$CLASSIC_WEBSERVICE.yml" || die "could not derive the classic route set"
chmod 644 "$ZNUNY_STATE/$CLASSIC_WEBSERVICE.yml"
for ws in "$WEBSERVICE" "$TA_WEBSERVICE" "$CLASSIC_WEBSERVICE"; do
    source="$examples/$ws.yml"
    [ "$ws" = "$CLASSIC_WEBSERVICE" ] && source="$ZNUNY_STATE/$ws.yml"
    if ! exists "SELECT count(*) FROM gi_webservice_config WHERE name='$ws'"; then
        console Admin::WebService::Add --name "$ws" --source-path "$source" >/dev/null
    fi
done
# The billing fields come from the connector itself (one definition for register() and CI).
fields_yml="$ZNUNY_STATE/ticketbill-dynamic-fields.yml"
python=$REPO/.venv/bin/python
[ -x "$python" ] || python=python3
(cd "$REPO" && "$python" -m connectors.otrs dynamic-fields-yaml) >"$fields_yml.new" \
    || die "could not generate the dynamic-field YAML (python -m connectors.otrs)"
mv "$fields_yml.new" "$fields_yml"
chmod 644 "$fields_yml"
mapfile -t field_names < <(cd "$REPO" && "$python" -m connectors.otrs dynamic-field-names)
missing=0
for name in "${field_names[@]}"; do
    exists "SELECT count(*) FROM dynamic_field WHERE name='$name'" || missing=1
done
if [ "$missing" = 1 ]; then
    console Admin::DynamicField::Import "$fields_yml" >/dev/null
    for name in "${field_names[@]}"; do
        exists "SELECT count(*) FROM dynamic_field WHERE name='$name'" || die "dynamic field $name was not imported"
    done
fi
# The OTRS 6.0 path (no Import command there): the Perl script `register` writes, run for a
# second set of fields (prefix O6), so CI proves the script on a real system.
o6_script="$ZNUNY_STATE/otrs-dynamic-fields-o6.pl"
(cd "$REPO" && "$python" -m connectors.otrs dynamic-fields-script O6) >"$o6_script.new" \
    || die "could not generate the dynamic-field script (python -m connectors.otrs)"
mv "$o6_script.new" "$o6_script"
chmod 644 "$o6_script"
mapfile -t o6_names < <(cd "$REPO" && "$python" -m connectors.otrs dynamic-field-names O6)
o6_missing=0
for name in "${o6_names[@]}"; do
    exists "SELECT count(*) FROM dynamic_field WHERE name='$name'" || o6_missing=1
done
if [ "$o6_missing" = 1 ]; then
    (cd "$ZNUNY_HOME" && runuser -u "$SYSTEM_USER" -- perl "$o6_script") >"$ZNUNY_STATE/o6-fields.log" 2>&1 \
        || { cat "$ZNUNY_STATE/o6-fields.log"; die "the OTRS 6 field script failed"; }
fi
step "fixtures"

# -- server --------------------------------------------------------------------------------
if server_pid >/dev/null && session_ok; then
    step "server already up (plackup pid $(cat "$PID_FILE"))"
else
    stop_server
    cd "$ZNUNY_HOME"
    # Starlet pre-forks a few workers, so a slow TicketGet does not block the next request.
    setsid runuser -u "$SYSTEM_USER" -- plackup -E deployment -s Starlet --max-workers 4 \
        --host 127.0.0.1 --port "$ZNUNY_PORT" bin/cgi-bin/app.psgi \
        >>"$ZNUNY_STATE/plackup.log" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    cd "$REPO"
    for _ in $(seq 1 120); do
        session_ok && break
        server_pid >/dev/null || { tail -20 "$ZNUNY_STATE/plackup.log"; die "plackup exited"; }
        sleep 0.5
    done
    session_ok || { tail -20 "$ZNUNY_STATE/plackup.log"; die "the web service does not answer"; }
    step "server up (plackup pid $(cat "$PID_FILE"))"
fi

agents=$(IFS=,; echo "${AGENTS[*]}")
customers=$(IFS=,; echo "${CUSTOMER_USERS[*]}")
companies=$(for c in "${COMPANIES[@]}"; do printf '%s,' "${c%%|*}"; done)
cat >"$ZNUNY_ENV_FILE.new" <<EOF
ZNUNY_URL=$ZNUNY_URL
ZNUNY_GI_PATH=$GI_PATH
ZNUNY_WEBSERVICE=$WEBSERVICE
ZNUNY_TA_WEBSERVICE=$TA_WEBSERVICE
ZNUNY_CLASSIC_WEBSERVICE=$CLASSIC_WEBSERVICE
ZNUNY_USER=billing
ZNUNY_PASSWORD=$ZNUNY_PASSWORD
ZNUNY_AGENTS=$agents
ZNUNY_CUSTOMER_USERS=$customers
ZNUNY_CUSTOMER_COMPANIES=${companies%,}
ZNUNY_HOME=$ZNUNY_HOME
ZNUNY_CONSOLE="runuser -u $SYSTEM_USER -- perl $ZNUNY_HOME/bin/otrs.Console.pl"
ZNUNY_DSN=postgresql://$ZNUNY_DB@127.0.0.1:5432/$ZNUNY_DB
ZNUNY_VERSION=$(cat "$ZNUNY_HOME/DEBIAN_VERSION" 2>/dev/null || awk -F'= *' '/VERSION/ {print $2}' "$ZNUNY_HOME/RELEASE")
EOF
mv "$ZNUNY_ENV_FILE.new" "$ZNUNY_ENV_FILE"
step "env file $ZNUNY_ENV_FILE"
echo "znuny-up: Znuny answers at $ZNUNY_URL$GI_PATH/Webservice/$WEBSERVICE"
