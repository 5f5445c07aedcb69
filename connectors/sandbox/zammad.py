"""Zammad sandbox: a faithful imitation of Zammad's REST API on a loopback HTTP server.

Why it exists: the demo and the connector tests need a Zammad that behaves like the real one
(paths under ``/api/v1``, token/basic auth and their exact error bodies, silent page-size
clamps, both ``tickets/search`` response shapes, string decimals, attributes that only appear
after ``execute_migrations`` and the restart that follows) without running Rails, PostgreSQL
and Elasticsearch. The facts it imitates are in ``shared/reference/zammad-api.md``.

Starting it
-----------
::

    from connectors.sandbox.zammad import ZammadSandbox

    with ZammadSandbox.running(state_file=None, version="6.5",
                               seed_reference_date=date(2025, 7, 1),
                               restart_seconds=0) as sb:
        requests.get(sb.url + "/api/v1/users/me",
                     headers={"Authorization": f"Token token={sb.admin_token}"})

``ZammadSandbox(...)`` takes the same keyword arguments; call ``start()`` / ``stop()`` yourself
or use it as a context manager. Arguments:

- ``state_file``: path of a JSON file. Loaded when it exists (the seed arguments are then
  ignored), else seeded and created; rewritten atomically after every successful write request
  and on ``stop()``. ``None`` (default) keeps everything in memory.
- ``version``: ``"6.5"`` (default; ``tickets/search`` plain output is an array, ``full=true``
  gives ``record_ids/assets/total_count``, ``only_total_count`` works) or ``"6.4"`` (plain
  output ``{"tickets":[ids],"tickets_count":n,"assets":{...}}``). Changeable at run time via
  the ``version`` attribute.
- ``seed_reference_date``: the demo data covers the two months before this date (default
  2025-07-01). ``rng_seed`` (default 4711) makes the data reproducible.
- ``restart_seconds``: how long the API answers **503** (HTML body, like the reverse proxy in
  front of a restarting Zammad) after ``execute_migrations`` changed columns. Default 1.0 s;
  pass 0 in fast tests. The control API stays reachable during the window.
- ``host``/``port``: default ``127.0.0.1`` and 0 (a free port).

Attributes: ``url`` (base URL without ``/api/v1``), ``api_url`` (with ``/api/v1``),
``admin_token`` = ``"sandbox-admin-token"`` (``ticket.agent`` plus
``admin.time_accounting/object/webhook/trigger/...``; owner is the admin user
``ticketbill@nordlicht-it.example``, id 2), ``agent_token`` = ``"sandbox-agent-token"``
(same owner but only ``ticket.agent``: admin endpoints give 403 ``Token authorization
failed.``), ``agent_user_token`` = ``"sandbox-agent-user-token"`` (owner agent Anna Becker,
id 3, without admin role: 403 ``User authorization failed.``), ``admin_login`` /
``admin_password`` and ``agent_password`` (HTTP Basic for the admin and the four agents),
``state`` (the ``SandboxState``), ``requests_seen`` (deque of the last 10 000
``(method, path?query)`` API calls, for asserting what a client sent), ``lock`` (hold it to
read ``state`` consistently), ``version`` and ``restart_seconds`` (settable at run time).

Seed data: 3 organizations (ids 1-3) with 7 customers, 4 agents (user ids 3-6), the admin
user (id 2), system user ``-`` (id 1); 40 tickets with ~150 time rows (minutes; setting
``time_accounting_unit`` = ``minute``), types 1 Remote, 2 Vor-Ort, 3 Notfall, 4 Intern,
5 Fahrt; night/weekend bookings use Notfall; ticket 3 has a -15 correction, ticket 5 was closed
twice (``close_at`` < ``last_close_at``), ticket 7 is merged into another ticket of the same
organization (its time rows stay on 7; the merge is a ``parent`` link from the survivor, read
with ``GET /api/v1/links?link_object=Ticket&link_object_value=7``), the five newest tickets are
open (new, open, pending).

Behaviour choices worth knowing (details in ``zammad_api``/``zammad_state``):

- ``tickets/search`` follows the SQL (no Elasticsearch) path: ``query`` is a case-insensitive
  substring over title, number and article body/from/to/subject; field syntax such as
  ``state.name:closed`` finds nothing. ``condition`` takes flat or nested AND/OR/NOT selectors
  on ``ticket.*`` (any column incl. migrated custom fields), ``customer.*``, ``owner.*``,
  ``organization.*``, ``ticket_state.*``. 6.5 extras: ``with_total_count`` wraps plain/expand
  output as ``{"records", "total_count"}``; ``term``/``label`` give ``{id, label, value}`` rows.
- Unknown ``sort_by``/bad ``order_by``: 500 ``Found invalid column 'x' for sorting.``; users
  without the admin role see ``Error ID …: Please contact your administrator.`` instead.
- Unknown Bearer token: 401 ``The provided token is invalid.`` (OAuth path); unknown
  ``Token token=``: 401 ``Can't find User for Token``.
- Migrated custom columns start as null on existing rows (booleans: their default).
- Generic lists (states, organizations, users, time accountings, types): default 500, max
  1000, ``sort_by``/``order_by``; ``/tickets`` 100/100; search 50/200; articles unpaged.
- ``GET /time_accountings`` (6.1+; 404 before): every ticket's rows for ``admin.time_accounting``
  only (else 403 ``Not authorized``), generic paging and sorting, no date filter. A row saved
  or deleted re-sums its ticket (see ``strict_resum``).

Behaviour switches (attributes, settable at run time; constructor arguments of the same
name). Each imitates something real Zammad does that a test must be able to turn on:

- ``unstable_ties`` (default False): ``tickets/search`` returns tickets that tie on every
  sort column in a random order that changes per request, as PostgreSQL may (Zammad sorts by
  ``updated_at`` only unless asked for more). Seeded, so a test run is reproducible.
- the Zammad setting ``auto_shutdown`` (seeded on; ``set_setting("auto_shutdown", False)``
  or ``PUT /settings/{id}``): off, ``execute_migrations`` restarts nothing, new columns stay
  out of every answer and writes to them are dropped, until ``restart()`` (control API
  ``POST /__sandbox__/restart``), as with a real Zammad whose processes keep their column
  cache.
- ``group_access`` (default True): Zammad's ``TicketPolicy``: an agent sees (searches,
  reads) the tickets of groups it has ``read`` access to, writes only with ``change``, and
  lists a ticket's time accountings only with ``change`` (``admin.time_accounting`` does not
  replace it): otherwise 403 ``Not authorized``. ``full`` covers every access. The seed gives
  every agent ``full`` on both groups; ``set_group_access(user_id, group_id, ["read"])``
  narrows it, ``set_role_group_access(role_id, group_id, [...])`` grants through a role (as
  ``GET /roles`` shows it). False: every agent may do everything. (Zammad 6.1+ itself lets
  ``admin.time_accounting`` list any ticket's rows, per ticket too: the sandbox keeps the
  stricter per-ticket rule the sidecar's NoAccess handling was written against.)
- ``strict_resum`` (default False): as Zammad's ``Ticket::TimeAccounting.update_ticket``, a
  time accounting row saved or deleted saves its ticket (``updated_at`` and ``time_unit``
  move) only when the ticket's total changes: a booking of 0 or an edit of the activity type
  alone leaves the ticket untouched, so a poll by ``updated_at`` does not see it; the total
  after the last row is deleted is ``"0.0"``. Off, every row change bumps the ticket.

Webhooks and triggers (``zammad_webhooks``): ``/webhooks`` and ``/triggers`` as Zammad
validates them; a ticket change runs the triggers and delivers their webhooks from a worker
thread, signed (``X-Hub-Signature``) and retried as ``TriggerWebhookJob`` does
(``webhook_retry_waits``, Zammad's 10/20/30/40 s by default). ``webhooks.deliveries`` lists
each attempt as (delivery id, HTTP status or error); ``webhooks.wait_idle()`` waits for them.

Fault switches (each consumes one matching API request; ``path`` is a substring filter on
the request path, ``method`` an optional HTTP method filter):

- ``fail_next(count=1, status=500, retry_after=None, path=None, method=None)``: answer
  ``status`` without executing the request (500 masked JSON, 502/503/504 HTML, 429 text
  ``Retry later``); ``retry_after`` adds a ``Retry-After`` header.
- ``rate_limit_next(count=1, retry_after=2, path=None, method=None)``: shorthand for 429.
- ``malformed_next(count=1, path=None, method=None)``: execute, then truncate the body into
  invalid JSON (status 200, JSON content type).
- ``delay_next(count=1, seconds=1.0, path=None, method=None)``: sleep before answering.
- ``repeat_search_page(count=1)``: the next ``count`` ``tickets/search`` requests for page > 1
  return page 1 again (a paging loop); ``skip_search_page(count=1)`` answers the page after
  the one asked for (a skipped page).
- ``reset_next(count=1, path=None, method=None, after=False)``: close the connection with a
  TCP reset instead of answering; ``after=True`` executes the request first.
- ``slow_next(count=1, seconds=1.0, path=None, method=None)``: execute, then answer late (the
  write lands while the client has timed out).
- ``vanish_next(ticket_id, path=None, method=None, into=None)``: delete the ticket (or merge
  it ``into`` another) just before the next matching request.
- ``after_next(callback, path=None, method=None)`` (Python only): call ``callback`` after the
  next matching request executed, before it is answered.
- ``clear_faults()`` (also ends a restart window); ``begin_restart(seconds=None)`` opens the
  503 window by hand; ``restarting()`` tells whether it is open.

Clock: ``now()``, ``set_now(moment | None)`` (freeze; None = real time again),
``advance(seconds)`` (freezes at now + seconds). All timestamps the server writes use it.

Data helpers (same rules as the API): ``create_ticket(title, organization_id=1,
customer_id=None, owner_id=None, state="new", group_id=1, at=None)``, ``book_time(ticket_id,
minutes, agent_id=None, type_id=None, article=True, at=None)`` (creates an internal note with
the booking, as the UI does; ``article=False`` books without one), ``close_ticket(ticket_id,
at=None, agent_id=None)``, ``reopen_ticket(ticket_id, at=None)``, ``delete_ticket(ticket_id)``,
``merge_ticket(source_id, target_id)``, ``ticket(ticket_id)`` (plain columns, a copy),
``bookings(ticket_id=None)``, ``set_setting(name, value)``, ``closed_state_ids()``, ``save(path
=None)``. They return plain dicts shaped like the API's.

HTTP control API (for the demo or manual tests; no auth, loopback only), all JSON:
``GET /__sandbox__/status``; ``POST /__sandbox__/faults`` ``{"kind": "status"|"malformed"|
"delay"|"slow"|"reset"|"vanish"|"search_loop"|"search_skip", "count", "status", "retry_after",
"seconds", "path", "method", "after", "ticket_id", "into"}``;
``DELETE /__sandbox__/faults``; ``POST /__sandbox__/clock`` ``{"now": iso|null}`` or
``{"advance_seconds": n}``; ``POST /__sandbox__/version`` ``{"version": "6.4"}``;
``POST /__sandbox__/switches`` ``{"unstable_ties": true, ...}`` (the behaviour switches);
``POST /__sandbox__/tickets`` (create_ticket kwargs); ``POST /__sandbox__/tickets/<id>/
bookings`` (book_time kwargs); ``POST /__sandbox__/tickets/<id>/close``;
``POST /__sandbox__/tickets/<id>/merge`` ``{"into": id}``; ``DELETE /__sandbox__/tickets/<id>``.

CLI: ``python -m connectors.sandbox.zammad --port 8401 --state FILE [--version 6.4]
[--reference-date 2025-07-01] [--restart-seconds 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from werkzeug.http import http_date
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connectors.sandbox import zammad_seed
from connectors.sandbox.zammad_api import ZammadApp, json_response
from connectors.sandbox.zammad_state import SandboxState
from connectors.sandbox.zammad_values import ApiError, parse_time
from connectors.sandbox.zammad_webhooks import DEFAULT_WAITS, Dispatcher, changed_attributes

#: the behaviour switches the control API may set (``POST /__sandbox__/switches``)
SWITCHES = ("unstable_ties", "group_access", "strict_resum")


class _QuietHandler(WSGIRequestHandler):
    """No access log: tests and the demo print their own output. The `Date` header tells the
    sandbox's clock, as a real Zammad's tells its host's: clients bound their cursor by it."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def date_time_string(self, timestamp: float | None = None) -> str:
        app = getattr(self.server, "app", None)
        sandbox = getattr(app, "sandbox", None)
        if timestamp is None and sandbox is not None:
            return http_date(sandbox.now())
        return super().date_time_string(timestamp)


class ZammadSandbox:
    """One sandbox Zammad: state, clock, faults and the HTTP server thread."""

    def __init__(self, *, state_file: str | os.PathLike[str] | None = None,
                 version: str = "6.5", seed_reference_date: date | None = None,
                 rng_seed: int = zammad_seed.RNG_SEED, restart_seconds: float = 1.0,
                 host: str = "127.0.0.1", port: int = 0, unstable_ties: bool = False,
                 group_access: bool = True, strict_resum: bool = False,
                 webhook_retry_waits: tuple[float, ...] = DEFAULT_WAITS,
                 latency_ms: float | None = None) -> None:
        self.lock = threading.RLock()
        #: Every API request waits this long before it is served (outside the state lock,
        #: so concurrent requests overlap as they do against a remote Zammad): benchmarks
        #: measure what a real network round trip costs. ZAMMAD_SANDBOX_LATENCY_MS sets it too.
        self.latency_ms = (float(os.environ.get("ZAMMAD_SANDBOX_LATENCY_MS", "0"))
                           if latency_ms is None else latency_ms)
        #: API requests served since start (every method, faults included)
        self.request_count = 0
        self.webhooks = Dispatcher(webhook_retry_waits)
        self.unstable_ties = unstable_ties
        self.group_access = group_access
        self._ties = random.Random(rng_seed)
        self.version = version
        self.restart_seconds = restart_seconds
        self.state_file = Path(state_file) if state_file else None
        self.host = host
        self.port = port
        self.requests_seen: deque[tuple[str, str]] = deque(maxlen=10_000)
        self._faults: list[dict[str, Any]] = []
        self._search_loops = 0
        self._search_skips = 0
        self._restart_until = 0.0
        self._frozen: datetime | None = None
        if self.state_file and self.state_file.exists():
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
            self.state = SandboxState.from_json(raw, self.now)
            self._frozen = parse_time(raw.get("frozen_now"))
        else:
            data = zammad_seed.build_seed(seed_reference_date, rng_seed)
            self.state = SandboxState(data, self.now)
            self.persist()
        self.state.on_ticket_change = self._fire_triggers
        self.strict_resum = strict_resum
        self.app = ZammadApp(self)
        self.control = _ControlApi(self)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running(cls, **kwargs: Any) -> Iterator[ZammadSandbox]:
        """Start on a free loopback port, yield, always stop (and save)."""
        sandbox = cls(**kwargs)
        sandbox.start()
        try:
            yield sandbox
        finally:
            sandbox.stop()

    def __enter__(self) -> ZammadSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve in a daemon thread (threaded werkzeug server)."""
        if self._server is not None:
            return
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
                                        name=f"zammad-sandbox-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket, write the state file."""
        self.webhooks.wait_idle()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self.persist()

    def serve_forever(self) -> None:
        """Blocking serve for the CLI."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    admin_token = zammad_seed.ADMIN_TOKEN
    agent_token = zammad_seed.AGENT_TOKEN
    agent_user_token = zammad_seed.AGENT_USER_TOKEN
    admin_login = zammad_seed.ADMIN_LOGIN
    admin_password = zammad_seed.ADMIN_PASSWORD
    agent_password = zammad_seed.AGENT_PASSWORD

    # -- persistence -----------------------------------------------------------------

    def persist(self) -> None:
        """Write the state file (if any) atomically; called after each write request."""
        if self.state_file:
            self.save(self.state_file)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        target = Path(path) if path else self.state_file
        if target is None:
            raise ValueError("no state file given")
        with self.lock:
            data = self.state.to_json()
            data["frozen_now"] = zammad_seed.iso(self._frozen) if self._frozen else None
            text = json.dumps(data, ensure_ascii=False, indent=1)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, target)
        return target

    # -- clock -----------------------------------------------------------------------

    def now(self) -> datetime:
        return self._frozen or datetime.now(UTC)

    def set_now(self, moment: datetime | str | None) -> None:
        """Freeze the server clock at `moment` (aware or ISO string); None unfreezes."""
        self._frozen = parse_time(moment) if moment is not None else None

    def advance(self, seconds: float | timedelta) -> datetime:
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        self._frozen = self.now() + delta
        return self._frozen

    @contextlib.contextmanager
    def _clock_at(self, moment: datetime | str | None) -> Iterator[None]:
        if moment is None:
            yield
            return
        saved = self._frozen
        self._frozen = parse_time(moment)
        try:
            yield
        finally:
            self._frozen = saved

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    # -- faults ----------------------------------------------------------------------

    def _add_fault(self, kind: str, count: int, **options: Any) -> None:
        with self.lock:
            self._faults.append({"kind": kind, "remaining": count, **options})

    def fail_next(self, count: int = 1, status: int = 500, retry_after: float | None = None,
                  path: str | None = None, method: str | None = None) -> None:
        self._add_fault("status", count, status=status, retry_after=retry_after, path=path,
                        method=method)

    def rate_limit_next(self, count: int = 1, retry_after: float | None = 2,
                        path: str | None = None, method: str | None = None) -> None:
        self.fail_next(count, 429, retry_after, path, method)

    def malformed_next(self, count: int = 1, path: str | None = None,
                       method: str | None = None) -> None:
        self._add_fault("malformed", count, path=path, method=method)

    def delay_next(self, count: int = 1, seconds: float = 1.0, path: str | None = None,
                   method: str | None = None) -> None:
        self._add_fault("delay", count, seconds=seconds, path=path, method=method)

    def reset_next(self, count: int = 1, path: str | None = None, method: str | None = None,
                   after: bool = False) -> None:
        """Drop the connection without an answer (TCP reset); `after=True` executes the request
        first, like a proxy that dies after the helpdesk committed the write."""
        self._add_fault("reset", count, path=path, method=method, after=after)

    def slow_next(self, count: int = 1, seconds: float = 1.0, path: str | None = None,
                  method: str | None = None) -> None:
        """Execute at once, answer after `seconds`: a write that lands while the client has
        already timed out (``delay_next`` instead waits before executing)."""
        self._add_fault("slow", count, seconds=seconds, path=path, method=method)

    def vanish_next(self, ticket_id: int, path: str | None = None, method: str | None = None,
                    into: int | None = None) -> None:
        """Before the next matching request, delete the ticket (or merge it `into` another):
        a ticket that disappears between the search and the fetch of its bookings."""
        self._add_fault("vanish", 1, ticket_id=ticket_id, into=into, path=path, method=method)

    def after_next(self, callback: Callable[[], None], path: str | None = None,
                   method: str | None = None) -> None:
        """Call `callback` after the next matching request executed, before it is answered
        (Python only): a harness kills its client there, between the helpdesk's write and
        the client's commit."""
        self._add_fault("hook", 1, callback=callback, path=path, method=method)

    def skip_search_page(self, count: int = 1) -> None:
        """The next `count` ``tickets/search`` requests for page > 1 answer the page after the
        one asked for (a page silently skipped, as with an index changing under the pager)."""
        with self.lock:
            self._search_skips += count

    def take_search_skip(self) -> bool:
        with self.lock:
            if self._search_skips <= 0:
                return False
            self._search_skips -= 1
            return True

    def repeat_search_page(self, count: int = 1) -> None:
        with self.lock:
            self._search_loops += count

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            self._search_loops = 0
            self._search_skips = 0
            self._restart_until = 0.0

    def take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        """The first armed fault matching this request, consumed by one."""
        with self.lock:
            for fault in self._faults:
                if fault.get("path") and fault["path"] not in path:
                    continue
                if fault.get("method") and fault["method"].upper() != method:
                    continue
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def take_search_loop(self) -> bool:
        with self.lock:
            if self._search_loops <= 0:
                return False
            self._search_loops -= 1
            return True

    def begin_restart(self, seconds: float | None = None) -> None:
        """Imitate the post-migration restart: API answers 503 for `seconds`."""
        span = self.restart_seconds if seconds is None else seconds
        self._restart_until = time.monotonic() + span

    def restarting(self) -> bool:
        return time.monotonic() < self._restart_until

    def auto_shutdown(self) -> bool:
        """Zammad's ``auto_shutdown`` setting (6.5+; on by default): restart after a migration."""
        with self.lock:
            return self.state.data["settings"].get("auto_shutdown", {}).get("value", True) is True

    def restart(self) -> None:
        """The admin restarts Zammad (``systemctl restart zammad``): the API is down for
        ``restart_seconds``, then knows the columns migrated while ``auto_shutdown`` was off."""
        with self.lock:
            self.state.apply_restart()
            self.persist()
        self.begin_restart()

    def record_request(self, method: str, path: str) -> None:
        with self.lock:
            self.requests_seen.append((method, path))
            self.request_count += 1

    def _fire_triggers(self, ticket: dict[str, Any], changed: set[str]) -> None:
        """Zammad's triggers after a ticket update (caller holds the lock): action triggers
        whose condition matches; in selective mode only when a condition attribute changed."""
        for trigger in list(self.state.data["triggers"].values()):
            if not trigger.get("active") or trigger.get("activator", "action") != "action":
                continue
            condition = trigger.get("condition") or {}
            if (trigger.get("execution_condition_mode", "selective") == "selective"
                    and not changed_attributes(condition) & changed):
                continue
            try:
                matches = self.state._matches(ticket, condition, self.state.ticket_columns(),
                                              ticket["updated_by_id"])
            except ApiError:
                continue  # Zammad logs an invalid condition and goes on
            hook = (trigger.get("perform") or {}).get("notification.webhook") or {}
            webhook = self.state.data["webhooks"].get(int(hook.get("webhook_id") or 0))
            if matches and webhook is not None and webhook.get("active"):
                self.webhooks.enqueue(dict(webhook), str(trigger["name"]),
                                      self.state.webhook_payload(ticket))

    def tie_shuffle(self) -> random.Random | None:
        """A fresh, seeded tie order for one search request while ``unstable_ties`` is on."""
        if not self.unstable_ties:
            return None
        with self.lock:
            return random.Random(self._ties.random())

    @property
    def strict_resum(self) -> bool:
        """The behaviour switch ``strict_resum`` (kept on the state, which applies it)."""
        return self.state.strict_resum

    @strict_resum.setter
    def strict_resum(self, value: bool) -> None:
        self.state.strict_resum = bool(value)

    def version_at_least(self, major: int, minor: int) -> bool:
        parts = [int(p) for p in str(self.version).split(".")[:2] if p.isdigit()]
        parts += [0] * (2 - len(parts))
        return (parts[0], parts[1]) >= (major, minor)

    # -- data helpers ----------------------------------------------------------------

    def _agent(self, agent_id: int | None) -> int:
        return agent_id or zammad_seed_first_agent(self.state)

    def create_ticket(self, title: str, organization_id: int | None = 1,
                      customer_id: int | None = None, owner_id: int | None = None,
                      state: str = "new", group_id: int = 1,
                      at: datetime | str | None = None) -> dict[str, Any]:
        """A ticket by a customer of `organization_id` (first one unless given)."""
        with self.lock, self._clock_at(at):
            if customer_id is None:
                customer_id = next(u["id"] for u in self.state.data["users"].values()
                                   if u["organization_id"] == organization_id)
            params: dict[str, Any] = {
                "title": title, "group_id": group_id, "customer_id": customer_id,
                "owner_id": owner_id, "state": state,
                "article": {"body": f"{title}\n\nBitte um Rückmeldung.", "type": "email",
                            "sender": "Customer", "subject": title},
            }
            ticket = self.state.create_ticket(params, customer_id)
            self.persist()
            return self.state.columns(ticket)

    def book_time(self, ticket_id: int, minutes: Any, agent_id: int | None = None,
                  type_id: int | None = None, article: bool = True,
                  at: datetime | str | None = None) -> dict[str, Any]:
        """Book time as an agent does in the UI (with an internal note) or via REST."""
        with self.lock, self._clock_at(at):
            agent = self._agent(agent_id)
            if article:
                note = self.state.create_article(
                    {"ticket_id": ticket_id, "body": "Arbeitszeit gebucht.", "internal": True,
                     "time_unit": minutes, "accounted_time_type_id": type_id}, agent)
                booking = next(b for b in self.state.data["time_accountings"].values()
                               if b["ticket_article_id"] == note["id"])
            else:
                booking = self.state.add_booking(ticket_id, minutes, agent, type_id=type_id)
            self.persist()
            return dict(booking)

    def close_ticket(self, ticket_id: int, at: datetime | str | None = None,
                     agent_id: int | None = None) -> dict[str, Any]:
        closed = self.state.closed_state_ids()[0]
        with self.lock, self._clock_at(at):
            ticket = self.state.update_ticket(ticket_id, {"state_id": closed},
                                              self._agent(agent_id))
            self.persist()
            return self.state.columns(ticket)

    def reopen_ticket(self, ticket_id: int, at: datetime | str | None = None) -> dict[str, Any]:
        with self.lock, self._clock_at(at):
            ticket = self.state.update_ticket(ticket_id, {"state": "open"}, self._agent(None))
            self.persist()
            return self.state.columns(ticket)

    def delete_ticket(self, ticket_id: int) -> None:
        with self.lock:
            self.state.delete_ticket(ticket_id)
            self.persist()

    def merge_ticket(self, source_id: int, target_id: int) -> None:
        with self.lock:
            self.state.merge_ticket(source_id, target_id, self._agent(None))
            self.persist()

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self.state.columns(
                self.state.get("tickets", ticket_id, "Ticket"))))

    def bookings(self, ticket_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(b) for b in sorted(self.state.data["time_accountings"].values(),
                                            key=lambda b: b["id"])
                    if ticket_id is None or b["ticket_id"] == ticket_id]

    def closed_state_ids(self) -> list[int]:
        with self.lock:
            return self.state.closed_state_ids()

    def set_group_access(self, user_id: int, group_id: int, access: list[str] | None) -> None:
        """A user's access to one group (``["read"]``, ``["read", "change"]``, ``["full"]``);
        None removes it. As Zammad's *Group permissions* on the user."""
        self._set_access("users", user_id, group_id, access)

    def set_role_group_access(self, role_id: int, group_id: int, access: list[str] | None) -> None:
        """A role's access to one group, as *Group permissions* on the role in Zammad; every
        active member of the role has it too (``HasRoles#role_access?``)."""
        self._set_access("roles", role_id, group_id, access)

    def _set_access(self, table: str, row_id: int, group_id: int, access: list[str] | None) -> None:
        with self.lock:
            groups = self.state.data[table][row_id].setdefault("group_ids", {})
            if access is None:
                groups.pop(str(group_id), None)
            else:
                groups[str(group_id)] = list(access)
            self.persist()

    def set_setting(self, name: str, value: Any) -> None:
        with self.lock:
            self.state.data["settings"][name]["value"] = value
            self.persist()


def zammad_seed_first_agent(state: SandboxState) -> int:
    """The first pure agent (seed: Anna Becker), who books time in helper calls."""
    return min(u["id"] for u in state.data["users"].values()
               if u["role_ids"] == [2])


class _ControlApi:
    """``/__sandbox__/...``: the fault and data helpers over HTTP, for the demo."""

    def __init__(self, sandbox: ZammadSandbox) -> None:
        self.sandbox = sandbox

    def handle(self, request: Request) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}")
            return self._route(request.method, request.path.rstrip("/").split("/")[2:], body)
        except ApiError as exc:
            return json_response(exc.status, {"error": exc.message})
        except (ValueError, TypeError, KeyError) as exc:
            return json_response(400, {"error": f"bad control request: {exc}"})

    def _route(self, method: str, parts: list[str], body: dict[str, Any]) -> Response:
        sb = self.sandbox
        if parts == ["status"] and method == "GET":
            with sb.lock:
                data = sb.state.data
                return json_response(200, {
                    "version": sb.version, "now": zammad_seed.iso(sb.now()),
                    "frozen": sb._frozen is not None, "tickets": len(data["tickets"]),
                    "time_accountings": len(data["time_accountings"]),
                    "faults": len(sb._faults), "restarting": sb.restarting(),
                    "admin_token": sb.admin_token, "agent_token": sb.agent_token})
        if parts == ["faults"] and method == "DELETE":
            sb.clear_faults()
            return json_response(200, {})
        if parts == ["faults"] and method == "POST":
            kind = body.get("kind", "status")
            count = int(body.get("count", 1))
            filters = {"path": body.get("path"), "method": body.get("method")}
            if kind == "status":
                sb.fail_next(count, int(body.get("status", 500)), body.get("retry_after"),
                             **filters)
            elif kind == "malformed":
                sb.malformed_next(count, **filters)
            elif kind == "delay":
                sb.delay_next(count, float(body.get("seconds", 1.0)), **filters)
            elif kind == "search_loop":
                sb.repeat_search_page(count)
            elif kind == "search_skip":
                sb.skip_search_page(count)
            elif kind == "reset":
                sb.reset_next(count, after=bool(body.get("after")), **filters)
            elif kind == "slow":
                sb.slow_next(count, float(body.get("seconds", 1.0)), **filters)
            elif kind == "vanish":
                sb.vanish_next(int(body["ticket_id"]), into=body.get("into"), **filters)
            else:
                raise ValueError(f"unknown fault kind {kind!r}")
            return json_response(201, {})
        if parts == ["clock"] and method == "POST":
            if "advance_seconds" in body:
                sb.advance(float(body["advance_seconds"]))
            else:
                sb.set_now(body.get("now"))
            return json_response(200, {"now": zammad_seed.iso(sb.now())})
        if parts == ["version"] and method == "POST":
            sb.version = str(body["version"])
            return json_response(200, {"version": sb.version})
        if parts == ["restart"] and method == "POST":
            sb.restart()
            return json_response(200, {})
        if parts == ["switches"] and method == "POST":
            for name, value in body.items():
                if name not in SWITCHES:
                    raise ValueError(f"unknown switch {name!r} (known: {', '.join(SWITCHES)})")
                setattr(sb, name, value)
            return json_response(200, {name: getattr(sb, name) for name in SWITCHES})
        if parts == ["tickets"] and method == "POST":
            return json_response(201, sb.create_ticket(**body))
        if len(parts) >= 2 and parts[0] == "tickets":
            ticket_id = int(parts[1])
            action = parts[2] if len(parts) > 2 else ""
            if action == "" and method == "DELETE":
                sb.delete_ticket(ticket_id)
                return json_response(200, {})
            if action == "bookings" and method == "POST":
                return json_response(201, sb.book_time(ticket_id, **body))
            if action == "close" and method == "POST":
                return json_response(200, sb.close_ticket(ticket_id, **body))
            if action == "merge" and method == "POST":
                sb.merge_ticket(ticket_id, int(body["into"]))
                return json_response(200, {})
        return json_response(404, {"error": f"unknown control route {method} /{'/'.join(parts)}"})


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox in the foreground for manual use and the demo."""
    parser = argparse.ArgumentParser(description="Zammad REST API sandbox (loopback)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8401)
    parser.add_argument("--state", help="JSON state file (loaded if present, else seeded)")
    parser.add_argument("--version", default="6.5", help='"6.5" (default) or "6.4"')
    parser.add_argument("--reference-date", type=date.fromisoformat, default=None,
                        help="seed history ends at this date (default 2025-07-01)")
    parser.add_argument("--restart-seconds", type=float, default=1.0)
    parser.add_argument("--latency-ms", type=float, default=None,
                        help="wait this long before serving each API request (default 0)")
    args = parser.parse_args(argv)
    sandbox = ZammadSandbox(state_file=args.state, version=args.version,
                            seed_reference_date=args.reference_date,
                            restart_seconds=args.restart_seconds, host=args.host,
                            port=args.port, latency_ms=args.latency_ms)
    print(f"Zammad sandbox on {sandbox.url}/api/v1  admin token: {sandbox.admin_token}  "
          f"agent token: {sandbox.agent_token}", flush=True)
    sandbox.serve_forever()


if __name__ == "__main__":
    main()
