#!/bin/bash
# rt-up.sh - bring up a real Request Tracker 5 (Debian 12 packages, SQLite, standalone Starlet
# server) on 127.0.0.1 for ticketbill's RT connector integration tests.
#
# Why a real RT and not only the sandbox: the connector must survive RT's quirks (HTTP 200 with
# error messages in the body, numbers as strings, TicketSQL date parsing) exactly as RT has them.
#
# Idempotent: a second run skips what is already there (packages, config, fixtures, a working
# token) and only makes sure the server answers. Non-interactive (debconf preseed); run as root.
#
#   bash .ci/rt-up.sh            # install if needed, create fixtures, start, write the env file
#   bash .ci/rt-up.sh stop       # stop the rt-server this script started
#
# Environment (all optional):
#   RT_PORT=8480                       port on 127.0.0.1
#   RT_STATE=/var/tmp/ticketbill-rt    logs, pid file, token
#   RT_ENV_FILE=/tmp/ticketbill-rt.env where the connection details are written
#   RT_ROOT_PW=password                root's password (Debian postinst default; >= 5 chars)
#   RT_SERVER_USER=www-data            user the server runs as
#
# The env file (shell/dotenv syntax) holds: RT_URL, RT_TOKEN (REST2 token of root, for arranging
# test data), RT_USER, RT_PASSWORD, RT_AGENTS (name:password pairs, comma separated),
# RT_CUSTOMER_QUEUES, RT_CUSTOMER_CF, RT_GENERAL_QUEUE, RT_DB (the SQLite file; tests use it
# only to backdate transactions, which RT's API cannot do), and the sidecar's own
# least-privileged user: RT_BILLING_USER, RT_BILLING_PASSWORD, RT_BILLING_TOKEN (its REST2
# token, created as that user, which proves ManageAuthTokens suffices) and
# RT_GRANT_QUEUE_RIGHTS (a command: `$RT_GRANT_QUEUE_RIGHTS QUEUE...` gives the billing user
# exactly the README's queue rights on those queues; tests run it for the queues they create).
#
# The billing user holds exactly the rights the README names: globally ManageAuthTokens (its
# token) and, for `ticketbill register`, AdminCustomField, AssignCustomFields and
# SeeCustomField; on the billed queues SeeQueue, ShowTicket, ShowTicketComments,
# ShowOutgoingEmail, CommentOnTicket, SeeCustomField and ModifyCustomField. Any other right it
# holds is revoked, so the tests prove that list is enough.
set -euo pipefail

RT_PORT=${RT_PORT:-8480}
RT_URL="http://127.0.0.1:${RT_PORT}"
RT_STATE=${RT_STATE:-/var/tmp/ticketbill-rt}
RT_ENV_FILE=${RT_ENV_FILE:-/tmp/ticketbill-rt.env}
RT_ROOT_PW=${RT_ROOT_PW:-password}
RT_SERVER_USER=${RT_SERVER_USER:-www-data}
RT_DB=/var/lib/dbconfig-common/sqlite3/request-tracker5/rtdb
RT_LIB=/usr/share/request-tracker5/lib
RT_SERVER=/usr/share/request-tracker5/libexec/rt-server
SITE_CONFIG=/etc/request-tracker5/RT_SiteConfig.d/99-ticketbill.pm
BILLING_USER=billing
BILLING_PW=${RT_BILLING_PW:-billing-Secret1}
# Keep these two lists equal to the README and to connectors.rt (tests/test_docs.py checks).
BILLING_GLOBAL_RIGHTS="ManageAuthTokens AdminCustomField AssignCustomFields SeeCustomField"
BILLING_QUEUE_RIGHTS="SeeQueue ShowTicket ShowTicketComments ShowOutgoingEmail CommentOnTicket SeeCustomField ModifyCustomField"
FIXTURE_QUEUES=("Acme GmbH" "Globex AG" "Support")
PACKAGES=(request-tracker5 rt5-db-sqlite rt5-standalone w3m curl ca-certificates)

mkdir -p "$RT_STATE"
PID_FILE="$RT_STATE/rt-server.pid"

NAME=rt-up
# shellcheck source=server-lib.sh
source "$(dirname "$0")/server-lib.sh"

rest_status() {
    # HTTP status of an authenticated REST2 call; "000" when nothing answers.
    curl -s -o /dev/null -m 10 -w '%{http_code}' -H "Authorization: token $1" \
        "$RT_URL/REST/2.0/rt" || true
}

if [ "${1:-up}" = stop ]; then
    stop_server
    exit 0
fi
[ "${1:-up}" = up ] || die "usage: $0 [up|stop]"
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts the server as $RT_SERVER_USER)"

# 1. packages (skipped when installed) -------------------------------------------------------
installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || return 1
    done
}
if installed; then
    step "packages already installed"
else
    debconf-set-selections <<EOF
request-tracker5 request-tracker5/dbconfig-install boolean true
request-tracker5 request-tracker5/database-type select sqlite3
request-tracker5 request-tracker5/initial-root-password password ${RT_ROOT_PW}
request-tracker5 request-tracker5/rtname string rt.test
request-tracker5 request-tracker5/organization string test.invalid
request-tracker5 request-tracker5/correspondaddress string rt@localhost
request-tracker5 request-tracker5/commentaddress string rt-comment@localhost
request-tracker5 request-tracker5/webbaseurl string ${RT_URL}
request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true
request-tracker5 request-tracker5/install-cronjobs boolean false
exim4-config exim4/dc_eximconfig_configtype select local delivery only; not on a network
exim4-config exim4/dc_local_interfaces string 127.0.0.1
EOF
    step "debconf preseed"
    "${APT[@]}" update >"$RT_STATE/apt-update.log" 2>&1 \
        || die "apt-get update failed, see $RT_STATE/apt-update.log"
    step "apt-get update"
    # The postinst (dbconfig-common) creates AND initialises the SQLite database.
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends \
        "${PACKAGES[@]}" >"$RT_STATE/apt-install.log" 2>&1 \
        || { tail -30 "$RT_STATE/apt-install.log" >&2; die "apt-get install failed"; }
    step "apt-get install (+initdb)"
fi
[ -f "$RT_DB" ] || die "RT database $RT_DB is missing (dbconfig-common did not initialise it)"

# 2. site config, loaded last: serve at /, UTC, no mail, log to stderr ----------------------------
new_config=$(cat <<EOF
# Written by ticketbill .ci/rt-up.sh: RT for integration tests on loopback.
Set(\$WebPath, "");
Set(\$WebDomain, "127.0.0.1");
Set(\$WebPort, ${RT_PORT});
Set(\$WebBaseURL, "${RT_URL}");
Set(\$Timezone, "UTC");           # TicketSQL dates are read in this zone
Set(\$MailCommand, "testfile");   # never hand mail to an MTA
Set(\$LogToSyslog, undef);
Set(\$LogToSTDERR, "warning");
# RT checks the token (or password) with bcrypt on EVERY REST2 request: about 0.4 s of CPU at
# the default cost 12 on a CI runner. Cost 4 only makes the test instance fast; API unchanged.
Set(\$BcryptCost, 4);
1;
EOF
)
config_changed=0
if [ ! -f "$SITE_CONFIG" ] || [ "$(cat "$SITE_CONFIG")" != "$new_config" ]; then
    printf '%s\n' "$new_config" >"$SITE_CONFIG"
    config_changed=1
fi
chown root:"$RT_SERVER_USER" "$SITE_CONFIG" /etc/request-tracker5/RT_SiteConfig.pm
chmod 0640 "$SITE_CONFIG" /etc/request-tracker5/RT_SiteConfig.pm
step "site config (changed=$config_changed)"

# 3. fixtures + root token, idempotent, in one Perl run (RT has no REST for rights) ---------------
old_token=""
if [ -f "$RT_STATE/token" ]; then old_token=$(cat "$RT_STATE/token"); fi
fixture_stamp="$RT_STATE/fixtures.v1"
if [ -f "$fixture_stamp" ] && [ -n "$old_token" ] && [ $config_changed = 0 ] \
        && server_pid >/dev/null \
        && [ "$(rest_status "$old_token")" = 200 ]; then
    step "fixtures + token present"
else
    OLD_TOKEN="$old_token" RT_ROOT_PW="$RT_ROOT_PW" perl -I"$RT_LIB" -MRT=-init -e '
use strict; use warnings;
my $sys = RT->SystemUser;
sub need { my ($ok, $msg, $what) = @_; die "rt-up fixtures: $what: $msg\n" unless $ok; }

my $root = RT::User->new($sys); $root->Load("root");
# Hashes made before $BcryptCost was lowered keep their cost; re-hash them once.
sub cheap { my $cost = RT->Config->Get("BcryptCost"); return $_[0] =~ /^!bcrypt!0?$cost!/; }
$root->SetPassword($ENV{RT_ROOT_PW})
    unless $root->IsPassword($ENV{RT_ROOT_PW}) && cheap($root->__Value("Password"));

my $group = RT::Group->new($sys); $group->LoadUserDefinedGroup("Agents");
unless ($group->id) {
    need($group->CreateUserDefinedGroup(Name => "Agents",
        Description => "helpdesk agents (ticketbill CI)"), "group Agents");
}
my %agents = (agent1 => ["Agent One", "agent1pass"], agent2 => ["Agent Two", "agent2pass"]);
for my $name (sort keys %agents) {
    my ($real, $pw) = @{ $agents{$name} };
    my $u = RT::User->new($sys); $u->Load($name);
    unless ($u->id) {
        need($u->Create(Name => $name, RealName => $real, Privileged => 1,
            EmailAddress => "$name\@example.com", Password => $pw), "user $name");
    }
    $u->SetPassword($pw) unless $u->IsPassword($pw) && cheap($u->__Value("Password"));
    $group->AddMember($u->PrincipalId) unless $group->HasMember($u->PrincipalObj);
}
# Global rights (object RT::System) so queues created later by the tests are covered too.
for my $right (qw(SeeQueue ShowTicket CreateTicket ReplyToTicket CommentOnTicket ModifyTicket
                  OwnTicket TakeTicket StealTicket ShowTicketComments SeeCustomField
                  ModifyCustomField ShowOutgoingEmail)) {
    my ($ok, $msg) = $group->PrincipalObj->GrantRight(Right => $right, Object => RT->System);
    die "rt-up fixtures: right $right: $msg\n" unless $ok || $msg =~ /already/i;
}
# Customer mapping fixtures: one queue per customer, plus a general queue whose tickets
# carry the customer in a global ticket custom field.
for my $q (["Acme GmbH", "customer queue"], ["Globex AG", "customer queue"],
           ["Support", "general queue, customer in CF Customer"]) {
    my $queue = RT::Queue->new($sys); $queue->Load($q->[0]);
    next if $queue->id;
    need($queue->Create(Name => $q->[0], Description => $q->[1],
        CorrespondAddress => "", CommentAddress => ""), "queue $q->[0]");
}
my $cf = RT::CustomField->new($sys);
$cf->LoadByName(Name => "Customer", LookupType => RT::Ticket->CustomFieldLookupType);
unless ($cf->id) {
    need($cf->Create(Name => "Customer", Type => "FreeformSingle",
        LookupType => RT::Ticket->CustomFieldLookupType,
        Description => "paying customer (ticketbill)"), "CF Customer");
}
unless ($cf->IsGlobal) {
    need($cf->AddToObject(RT::Queue->new($sys)), "apply CF Customer globally");
}
# REST2 token for root: keep a working one, else replace ours. RT bcrypt-checks EVERY token of
# the user on each request until one matches, so stale tokens would slow down every call.
my $token = $ENV{OLD_TOKEN} // "";
my ($owner, $found) = $token ? RT::Authen::Token->UserForAuthString($token) : ();
my $keep = ($owner && $owner->Name eq "root" && cheap($found->__Value("Token"))) ? $found->id : 0;
my $cu = RT::CurrentUser->new($sys); $cu->Load("root");
my $ours = RT::AuthTokens->new($sys);
$ours->LimitOwner(VALUE => $cu->id);
while (my $t = $ours->Next) {
    $t->Delete if $t->Description eq "ticketbill CI" && $t->id != $keep;
}
unless ($keep) {
    my ($id, $msg, $auth) = RT::AuthToken->new($cu)->Create(Owner => $cu->id,
        Description => "ticketbill CI");
    die "rt-up fixtures: token: $msg\n" unless $id;
    $token = $auth;
}
print $token;
' >"$RT_STATE/token.new" 2>"$RT_STATE/fixtures.log" \
        || { cat "$RT_STATE/fixtures.log" >&2; die "creating fixtures failed"; }
    mv "$RT_STATE/token.new" "$RT_STATE/token"
    chmod 0600 "$RT_STATE/token"
    touch "$fixture_stamp"
    step "fixtures + token"
fi
RT_TOKEN=$(cat "$RT_STATE/token")

# 3b. the sidecar's least-privileged user, its rights and its own token ---------------------------
# queue-rights.pl gives the billing user exactly BILLING_QUEUE_RIGHTS on the named queues and
# revokes any other right it holds there; the tests run it for the queues they create.
cat >"$RT_STATE/queue-rights.pl.new" <<PERL
# Written by ticketbill .ci/rt-up.sh. As root: perl -I$RT_LIB -MRT=-init $RT_STATE/queue-rights.pl QUEUE...
use strict; use warnings;
my @wanted = qw($BILLING_QUEUE_RIGHTS);
my \$sys = RT->SystemUser;
my \$user = RT::User->new(\$sys); \$user->Load("$BILLING_USER");
die "queue-rights: no user $BILLING_USER (run .ci/rt-up.sh)\n" unless \$user->id;
for my \$name (@ARGV) {
    my \$queue = RT::Queue->new(\$sys); \$queue->Load(\$name);
    die "queue-rights: no queue \$name\n" unless \$queue->id;
    my %want = map { \$_ => 1 } @wanted;
    my \$acl = RT::ACL->new(\$sys);
    \$acl->LimitToObject(\$queue);
    \$acl->LimitToPrincipal(Type => "Group", Id => \$user->PrincipalId);  # its ACL equivalence group
    while (my \$ace = \$acl->Next) {
        next if delete \$want{\$ace->RightName};
        my (\$ok, \$msg) = \$ace->Delete;
        die "queue-rights: revoke " . \$ace->RightName . " on \$name: \$msg\n" unless \$ok;
    }
    for my \$right (sort keys %want) {
        my (\$ok, \$msg) = \$user->PrincipalObj->GrantRight(Right => \$right, Object => \$queue);
        die "queue-rights: \$right on \$name: \$msg\n" unless \$ok || \$msg =~ /already/i;
    }
}
1;
PERL
mv "$RT_STATE/queue-rights.pl.new" "$RT_STATE/queue-rights.pl"
GRANT_QUEUE_RIGHTS="perl -I$RT_LIB -MRT=-init $RT_STATE/queue-rights.pl"
billing_token=""
if [ -f "$RT_STATE/billing-token" ]; then billing_token=$(cat "$RT_STATE/billing-token"); fi
billing_stamp="$RT_STATE/billing.v1"
if [ -f "$billing_stamp" ] && [ -n "$billing_token" ] && [ $config_changed = 0 ] \
        && server_pid >/dev/null && [ "$(rest_status "$billing_token")" = 200 ]; then
    step "billing user + token present"
else
    OLD_TOKEN="$billing_token" BILLING_PW="$BILLING_PW" GLOBAL_RIGHTS="$BILLING_GLOBAL_RIGHTS" \
    perl -I"$RT_LIB" -MRT=-init -e '
use strict; use warnings;
my $sys = RT->SystemUser;
sub need { my ($ok, $msg, $what) = @_; die "rt-up billing: $what: $msg\n" unless $ok; }
sub cheap { my $cost = RT->Config->Get("BcryptCost"); return $_[0] =~ /^!bcrypt!0?$cost!/; }
my $user = RT::User->new($sys); $user->Load("billing");
unless ($user->id) {
    need($user->Create(Name => "billing", RealName => "Billing Sidecar", Privileged => 1,
        EmailAddress => "billing\@example.com", Password => $ENV{BILLING_PW}), "user billing");
}
$user->SetPassword($ENV{BILLING_PW})
    unless $user->IsPassword($ENV{BILLING_PW}) && cheap($user->__Value("Password"));
$user->SetPrivileged(1) unless $user->Privileged;
# Exactly the global rights of the README: revoke others, grant the missing ones.
my %want = map { $_ => 1 } split " ", $ENV{GLOBAL_RIGHTS};
my $acl = RT::ACL->new($sys);
$acl->LimitToObject(RT->System);
$acl->LimitToPrincipal(Type => "Group", Id => $user->PrincipalId);  # rights sit on its ACL equivalence group
while (my $ace = $acl->Next) {
    next if delete $want{$ace->RightName};
    need($ace->Delete, "revoke " . $ace->RightName);
}
for my $right (sort keys %want) {
    my ($ok, $msg) = $user->PrincipalObj->GrantRight(Right => $right, Object => RT->System);
    need($ok || $msg =~ /already/i, $msg, "right $right");
}
# Its token, created as the user itself, as the README tells the admin to do: that needs
# ManageAuthTokens and nothing else. One token only (RT checks every token on each request).
my $token = $ENV{OLD_TOKEN} // "";
my ($owner, $found) = $token ? RT::Authen::Token->UserForAuthString($token) : ();
my $keep = ($owner && $owner->Name eq "billing" && cheap($found->__Value("Token"))) ? $found->id : 0;
my $cu = RT::CurrentUser->new($sys); $cu->Load("billing");
my $tokens = RT::AuthTokens->new($sys);
$tokens->LimitOwner(VALUE => $cu->id);
while (my $t = $tokens->Next) { $t->Delete if $t->id != $keep; }
unless ($keep) {
    my ($id, $msg, $auth) = RT::AuthToken->new($cu)->Create(Owner => $cu->id,
        Description => "ticketbill sidecar");
    die "rt-up billing: token (needs ManageAuthTokens): $msg\n" unless $id;
    $token = $auth;
}
print $token;
' >"$RT_STATE/billing-token.new" 2>"$RT_STATE/billing.log" \
        || { cat "$RT_STATE/billing.log" >&2; die "setting up the billing user failed"; }
    $GRANT_QUEUE_RIGHTS "${FIXTURE_QUEUES[@]}" 2>>"$RT_STATE/billing.log" \
        || { cat "$RT_STATE/billing.log" >&2; die "granting the billing user its queue rights failed"; }
    mv "$RT_STATE/billing-token.new" "$RT_STATE/billing-token"
    chmod 0600 "$RT_STATE/billing-token"
    touch "$billing_stamp"
    step "billing user, rights + token"
fi
BILLING_TOKEN=$(cat "$RT_STATE/billing-token")

# 4. server: keep a healthy one, restart on config change, else start -----------------------------
if [ $config_changed = 1 ]; then stop_server; fi
if server_pid >/dev/null && [ "$(rest_status "$RT_TOKEN")" = 200 ]; then
    step "server already up"
else
    stop_server
    if [ "$(rest_status "$RT_TOKEN")" != 000 ]; then
        die "something else answers on $RT_URL; set RT_PORT to a free port"
    fi
    # Mason cache and DB journal must belong to the server user (root ran the fixtures).
    chown -R "$RT_SERVER_USER" /var/cache/request-tracker5 /var/lib/request-tracker5
    chown "$RT_SERVER_USER" "$(dirname "$RT_DB")" "$RT_DB"
    setsid setpriv --reuid="$RT_SERVER_USER" --regid="$RT_SERVER_USER" --init-groups \
        "$RT_SERVER" --host 127.0.0.1 --port "$RT_PORT" --max-workers 4 \
        >"$RT_STATE/rt-server.log" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for i in $(seq 1 240); do
        [ "$(rest_status "$RT_TOKEN")" = 200 ] && break
        kill -0 "$(cat "$PID_FILE")" 2>/dev/null || { tail -20 "$RT_STATE/rt-server.log" >&2;
            die "rt-server exited"; }
        [ "$i" -lt 240 ] || { tail -20 "$RT_STATE/rt-server.log" >&2; die "RT did not come up"; }
        sleep 0.25
    done
    step "server started (REST2 200)"
fi

umask 077
cat >"$RT_ENV_FILE" <<EOF
RT_URL=$RT_URL
RT_TOKEN=$RT_TOKEN
RT_USER=root
RT_PASSWORD=$RT_ROOT_PW
RT_AGENTS=agent1:agent1pass,agent2:agent2pass
RT_CUSTOMER_QUEUES="Acme GmbH,Globex AG"
RT_GENERAL_QUEUE=Support
RT_CUSTOMER_CF=Customer
RT_DB=$RT_DB
RT_BILLING_USER=$BILLING_USER
RT_BILLING_PASSWORD=$BILLING_PW
RT_BILLING_TOKEN=$BILLING_TOKEN
RT_GRANT_QUEUE_RIGHTS="$GRANT_QUEUE_RIGHTS"
EOF
echo "rt-up: RT ready at $RT_URL (pid $(cat "$PID_FILE")); details in $RT_ENV_FILE"
