"""Expected failures as one line a person can act on (the CLI's and the logs' wording).

Why a module of its own: the CLI, `serve` and the readiness check meet the same handful of
operational failures — the helpdesk or the database is down, the data directory is not
writable, the helpdesk refuses the credentials — and must describe them the same way, with
the host and port to look at and never a password. Anything not recognised here is a bug and
keeps its traceback (behind `--debug` in the CLI).
"""

from __future__ import annotations

import errno
import getpass
import re
import socket
from urllib.parse import urlsplit

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from addon.settings import mask_url
from connectors.base import AuthError, ConnectorError
from connectors.http import MASKING


def host_port(url: str) -> tuple[str, int]:
    """Host and port an http(s) URL connects to (the scheme's default port if none is given)."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def probe_tcp(url: str, timeout: float = 3.0) -> str | None:
    """None when a TCP connection to the URL's host and port opens, else why not (one line).

    Why TCP and not HTTP: it answers in milliseconds without credentials or retries, and it
    is exactly the question "is anything listening there?" that an admin asks first.
    """
    host, port = host_port(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"cannot resolve host {host!r}"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except ConnectionRefusedError:
        return f"connection refused at {host}:{port}"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def database_reason(exc: DBAPIError, database_url: str) -> str:
    """The driver's first line (it names host and port) and the URL without its password."""
    reason = _first_line(exc.orig if exc.orig is not None else exc)
    if database_url.startswith("sqlite"):
        return f"{reason} ({database_url}; can {_user()} write the data directory?)"
    return f"{reason} ({mask_url(database_url)})"


def describe_database_error(exc: DBAPIError, database_url: str) -> str:
    return f"database: {database_reason(exc, database_url)}"


def describe_os_error(exc: OSError) -> str:
    """A file-system failure, naming the path and the user (the data directory is the one
    place ticketbill writes, so that is what to check first)."""
    path = exc.filename or "?"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"not writable: {path} ({exc.strerror}; running as {_user()}; check the owner of DATA_DIR)"
    return f"{path}: {exc.strerror or exc}"


def describe_connector_error(exc: ConnectorError) -> str:
    """Helpdesk trouble; a refused login says which settings to check."""
    if isinstance(exc, AuthError):
        return f"helpdesk refused the credentials: {exc} (check HELPDESK_TOKEN, or HELPDESK_USER and HELPDESK_PASSWORD)"
    return f"helpdesk error: {exc}"


def describe(exc: BaseException, database_url: str | None = None) -> str | None:
    """The one-line description of an expected failure, or None if `exc` is not one (a bug)."""
    if isinstance(exc, ConnectorError):
        return describe_connector_error(exc)
    if is_connection_error(exc):
        return describe_database_error(exc, database_url or "")
    if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError | FileNotFoundError) or (
        isinstance(exc, OSError) and exc.errno == errno.EROFS
    ):
        return describe_os_error(exc)
    return None


def is_connection_error(exc: BaseException) -> bool:
    """Server down or file not openable, as opposed to a bad query (a bug)."""
    return isinstance(exc, OperationalError | InterfaceError)


_TABLE = re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|FROM)\s+\"?(\w+)", re.IGNORECASE)


def describe_error(exc: BaseException) -> str:
    """One line for a run record, a needs-attention reason or a helpdesk note.

    Why not `str(exc)`: a database error's text carries the statement with its parameters
    (ticket titles, customer data, tokens of a row) and the driver's detail lines; those
    texts end up in helpdesk notes that agents and customers read. A database error is named
    by its kind, its table and its constraint; anything else by its first line, with
    passwords of URLs and helpdesk tokens masked.
    """
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({_database_cause(exc)})"
    line = MASKING.mask(mask_url(_first_line(exc)))
    return line if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {line}"


def _database_cause(exc: SQLAlchemyError) -> str:
    """`IntegrityError on ticket: ticket_helpdesk_remote_id_key` — no SQL, no values."""
    cause = type(exc).__name__
    statement = getattr(exc, "statement", None) or ""
    table = _TABLE.search(statement)
    if table:
        cause += f" on {table.group(1)}"
    diag = getattr(getattr(exc, "orig", None), "diag", None)  # PostgreSQL names the constraint
    constraint = getattr(diag, "constraint_name", None)
    if constraint:
        cause += f": {constraint}"
    return cause


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "this user"
