"""The one HTTP client every connector uses: timeouts, retries, error mapping, paging, masking.

Why one choke point: the rules for talking to a helpdesk (never hang, back off politely,
never leak the token, turn status codes into the small `ConnectorError` tree) must hold for
Zammad, OTRS and RT alike, and are tested once here instead of once per connector.

Retry policy. 429, 502, 503, 504 and connection failures are retried with capped exponential
backoff, honouring `Retry-After` (seconds or an HTTP date), up to `max_attempts` requests in
total. A request marked non-idempotent (a POST, or a PUT that adds an article) is retried only
when it surely never reached the application: a refused or timed-out *connect*, or a 429/503.
A read timeout or a 502/504 on such a request raises instead, because the write may have
landed; the caller's read-before-write (the write-back marker) decides on the next run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from connectors.base import AuthError, NotFound, RateLimited, RemoteError

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Statuses after which a non-idempotent request was certainly not processed.
UNPROCESSED_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MASK = "***"
MIN_SECRET_LENGTH = 4


class MaskingFilter(logging.Filter):
    """Replaces every registered secret in a log record (message, args and traceback).

    One shared instance (`MASKING`) is attached to the loggers that see request details; an
    application can add it to its own handlers too, or use `MaskingFormatter`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        """Register a secret; very short strings are ignored (masking them would garble logs)."""
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            self._secrets.add(secret)

    def mask(self, text: str) -> str:
        # Longest first, so a secret containing another secret is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        return True


MASKING = MaskingFilter()
# Loggers that may carry URLs or request details: ours and urllib3's connection pool.
MASKED_LOGGERS = ("connectors", "connectors.http", "urllib3.connectionpool", "urllib3.util.retry")


class MaskingFormatter(logging.Formatter):
    """A formatter that masks registered secrets in the final line (the CLI's log handler)."""

    def format(self, record: logging.LogRecord) -> str:
        return MASKING.mask(super().format(record))


def install_masking(*logger_names: str) -> None:
    """Attach the shared `MASKING` filter to the named loggers (idempotent)."""
    for name in logger_names or MASKED_LOGGERS:
        logger = logging.getLogger(name)
        if MASKING not in logger.filters:
            logger.addFilter(MASKING)


def default_error_text(response: requests.Response) -> str:
    """The helpdesk's own error message, as short text.

    Zammad sends `{"error", "error_human"}`, OTRS `{"Error": {"ErrorMessage"}}`, RT
    `{"message"}`; anything else falls back to the start of the body.
    """
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        for key in ("error_human", "error", "message", "Error"):
            value = payload.get(key)
            if isinstance(value, Mapping):
                value = value.get("ErrorMessage") or value.get("message") or json.dumps(value)
            if value:
                return str(value)[:300]
    text = (response.text or "").strip()
    return text[:300] if text else (response.reason or "no error text")


def parse_retry_after(value: str | None, now: Callable[[], datetime]) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def _surely_unsent(exc: requests.RequestException) -> bool:
    """True if the request never reached the server (refused or timed-out connect)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        text = repr(exc.args[0]) if exc.args else ""
        return "NewConnectionError" in text or "NameResolutionError" in text
    return False


class HttpClient:
    """A `requests.Session` bound to one helpdesk base URL, with the retry and error rules above.

    `secrets` are masked in every log line and exception message. `sleep` and `now` are
    injectable so tests never wait. `request_count` counts HTTP requests actually sent
    (retries included), for the requests-per-billed-ticket benchmark.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        error_text: Callable[[requests.Response], str] = default_error_text,
        session: requests.Session | None = None,
        user_agent: str = "ticketbill/0.1",
        pool_size: int = 10,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.now = now
        self.error_text = error_text
        self.request_count = 0
        self._lock = threading.Lock()
        #: no request is sent before this moment (monotonic): a 429's Retry-After holds back
        #: every thread sharing the client, not just the one that was told to wait
        self._paused_until, self._paused_by = 0.0, 0
        #: the helpdesk's clock (its `Date` header) at the last response; None before one
        self.server_date: datetime | None = None
        self.session = session or requests.Session()
        # Retries are ours alone; urllib3's own would double them and ignore our rules. The
        # pool keeps one connection per worker thread (HELPDESK_CONCURRENCY) alive.
        adapter = HTTPAdapter(max_retries=0, pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"
        self.session.headers.update(headers or {})
        if auth is not None:
            self.session.auth = auth
        self._masker = MASKING
        for secret in secrets:
            self._masker.add(secret)
        if auth is not None:
            self._masker.add(auth[1])
        install_masking()

    # -- plumbing ---------------------------------------------------------------------------

    def mask(self, text: str) -> str:
        """`text` with every registered secret replaced by `***`."""
        return self._masker.mask(text)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def close(self) -> None:
        self.session.close()

    def _backoff(self, retry_number: int) -> float:
        return min(self.backoff_cap, self.backoff_base * (2 ** (retry_number - 1)))

    def _describe(self, method: str, path: str) -> str:
        return self.mask(f"{method} {urlsplit(self.url(path)).path}")

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one logical request (retrying as allowed); return the 2xx response.

        Raises `AuthError` (401/403), `NotFound` (404), `RateLimited` (429 after retries) and
        `RemoteError` for anything else (status 0 when the helpdesk was unreachable).
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        what = self._describe(method, path)
        url = self.url(path)
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.max_attempts
            self._wait_for_pause()
            with self._lock:
                self.request_count += 1
            try:
                response = self.session.request(
                    method, url, params=params, json=json_body, timeout=self.timeout
                )
            except requests.RequestException as exc:
                reason = self.mask(str(exc))
                retryable = idempotent or _surely_unsent(exc)
                if last or not retryable:
                    host = urlsplit(self.base_url).netloc
                    raise RemoteError(
                        f"{what}: helpdesk at {host} unreachable after {attempt} attempt(s): "
                        f"{type(exc).__name__}: {reason}",
                        status=0,
                    ) from None
                wait = self._backoff(attempt)
                log.warning("%s: %s; retry %d/%d in %.1f s", what, type(exc).__name__,
                            attempt, self.max_attempts - 1, wait)
                self.sleep(wait)
                continue

            self.server_date = _date_header(response) or self.server_date
            status = response.status_code
            if 200 <= status < 300:
                return response
            retryable = status in RETRY_STATUSES and (idempotent or status in UNPROCESSED_STATUSES)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.now)
            too_long = retry_after is not None and retry_after > self.max_retry_after
            if retryable and not last and not too_long:
                wait = retry_after if retry_after is not None else self._backoff(attempt)
                if status == 429:
                    with self._lock:
                        self._paused_until = max(self._paused_until, time.monotonic() + wait)
                        self._paused_by = threading.get_ident()
                log.warning("%s: HTTP %d; retry %d/%d in %.1f s", what, status,
                            attempt, self.max_attempts - 1, wait)
                self.sleep(wait)
                continue
            raise self._error(what, response, attempt, retry_after)

    def _wait_for_pause(self) -> None:
        """Sleep until a rate limit another thread was given has passed (the thread that got
        the 429 sleeps its Retry-After in the retry loop itself)."""
        with self._lock:
            if self._paused_by == threading.get_ident():
                return
            remaining = self._paused_until - time.monotonic()
        if remaining > 0:
            self.sleep(remaining)

    def _error(
        self, what: str, response: requests.Response, attempts: int, retry_after: float | None
    ) -> Exception:
        status = response.status_code
        text = self.mask(self.error_text(response))
        body = self.mask(response.text or "")
        if status in (401, 403):
            return AuthError(f"{what}: helpdesk refused access (HTTP {status}): {text}")
        if status == 404:
            return NotFound(f"{what}: not found (HTTP 404): {text}")
        if status == 429:
            return RateLimited(
                f"{what}: rate limited (HTTP 429) after {attempts} attempt(s): {text}",
                retry_after=retry_after,
            )
        tries = f" after {attempts} attempt(s)" if status in RETRY_STATUSES else ""
        return RemoteError(f"{what}: HTTP {status}{tries}: {text}", status=status, body=body)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """`request`, then decode the JSON body (None for an empty body)."""
        response = self.request(
            method, path, params=params, json_body=json_body, idempotent=idempotent
        )
        if not response.content or not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(
                f"{self._describe(method, path)}: malformed JSON from helpdesk "
                f"(HTTP {response.status_code}): {exc}",
                status=response.status_code,
                body=self.mask(response.text),
            ) from None

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request_json("GET", path, params=params)

    def post_json(self, path: str, body: Any, *, idempotent: bool = False) -> Any:
        return self.request_json("POST", path, json_body=body, idempotent=idempotent)

    def put_json(self, path: str, body: Any, *, idempotent: bool = True) -> Any:
        return self.request_json("PUT", path, json_body=body, idempotent=idempotent)

    # -- paging -----------------------------------------------------------------------------

    def paginate(
        self,
        fetch_page: Callable[[int], Sequence[T]],
        *,
        per_page: int,
        key: Callable[[T], Hashable] | None = None,
        first_page: int = 1,
        max_pages: int = 10_000,
    ) -> Iterator[T]:
        """Yield items from `fetch_page(1)`, `fetch_page(2)`, ... until a short or empty page.

        A server that ignores `page` would otherwise loop forever: a page whose keys equal the
        previous page's raises `RemoteError("loop detected in pagination")`, and more than
        `max_pages` pages raise too. `key` defaults to the item's `"id"`.
        """
        key_of = key or _item_id
        previous: tuple[Hashable, ...] | None = None
        page_number = first_page
        for _ in range(max_pages):
            items = fetch_page(page_number)
            if not items:
                return
            keys = tuple(key_of(item) for item in items)
            if keys == previous:
                raise RemoteError(
                    f"loop detected in pagination: page {page_number} repeats page "
                    f"{page_number - 1}"
                )
            previous = keys
            yield from items
            if len(items) < per_page:
                return
            page_number += 1
        raise RemoteError(f"pagination exceeded {max_pages} pages; giving up")


def _date_header(response: requests.Response) -> datetime | None:
    """The response's `Date` as an aware datetime; None when absent or unreadable."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _item_id(item: Any) -> Hashable:
    if isinstance(item, Mapping):
        return item.get("id")
    return item
