"""Expected failures print one line naming what to check, never a traceback (unless --debug),
and never a password: helpdesk down, wrong helpdesk URL, refused token, database down, data
directory not writable, a missing --env-file. The CLI runs as a real process, as an admin
would run it, so nothing (logging, click, the interpreter) can sneak a traceback in."""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from addon.settings import load_settings
from connectors.sandbox.zammad import ZammadSandbox

ROOT = Path(__file__).resolve().parents[1]
SELLER = {
    "SELLER_NAME": "Muster IT GmbH",
    "SELLER_STREET": "Musterstraße 1",
    "SELLER_POSTCODE": "10115",
    "SELLER_CITY": "Berlin",
    "SELLER_VAT_ID": "DE136695976",
    "SELLER_IBAN": "DE89370400440532013000",
}
DB_PASSWORD = "hunter2-db-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_file(tmp_path: Path, **values: str) -> Path:
    settings = {"HELPDESK_KIND": "zammad", "HELPDESK_URL": f"http://127.0.0.1:{free_port()}",
                "HELPDESK_TOKEN": "t0ken-value", "DATA_DIR": str(tmp_path / "data"), **SELLER, **values}
    path = tmp_path / "ticketbill.env"
    path.write_text("\n".join(f"{k}={v}" for k, v in settings.items()), encoding="utf-8")
    path.chmod(0o644)
    return path


def ticketbill(*args: str | Path, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI as its own process; `as_nobody` runs it as user nobody (util-linux's setpriv)."""
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "addon.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False, env={"PATH": "/usr/bin:/bin"},
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_unreachable_helpdesk_names_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    result = ticketbill("--env-file", env_file(tmp_path, HELPDESK_URL=f"http://127.0.0.1:{port}"), "register")
    assert result.returncode == 1
    assert one_line(result) == (
        f"helpdesk unreachable: connection refused at 127.0.0.1:{port} (HELPDESK_URL=http://127.0.0.1:{port})"
    )


@pytest.mark.parametrize(("kind", "url", "suffix"), [
    ("zammad", "https://zammad.example.com/api/v1", "/api/v1"),
    ("zammad", "https://zammad.example.com/API/V1/", "/api/v1"),
    ("rt", "https://rt.example.com/rt/REST/2.0", "/REST/2.0"),
])
def test_helpdesk_url_with_the_api_path_says_drop_it(tmp_path: Path, kind: str, url: str, suffix: str) -> None:
    result = ticketbill("--env-file", env_file(tmp_path, HELPDESK_KIND=kind, HELPDESK_URL=url), "register")
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("configuration error: HELPDESK_URL: ")
    assert f"drop {suffix}" in line


def test_wrong_token_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with ZammadSandbox.running() as sandbox:
        path = env_file(tmp_path, HELPDESK_URL=sandbox.url, HELPDESK_TOKEN="wrong-token-4711")
        for command in (["register"], ["sync", "--once"]):
            result = ticketbill("--env-file", path, *command)
            assert result.returncode == 1
            line = one_line(result)
            assert line.startswith("helpdesk refused the credentials: ")
            assert "HTTP 401" in line and "check HELPDESK_TOKEN" in line
            assert "wrong-token-4711" not in result.stderr


def test_database_down_is_one_line_without_the_password(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql+psycopg://billing:{DB_PASSWORD}@127.0.0.1:{port}/ticketbill"
    path = env_file(tmp_path, DATABASE_URL=url)
    for command in (["init"], ["invoices", "list"], ["customers", "list"]):
        result = ticketbill("--env-file", path, *command)
        assert result.returncode == 1
        line = one_line(result)
        assert f'port {port} failed: Connection refused' in line
        assert f"postgresql+psycopg://billing:***@127.0.0.1:{port}/ticketbill" in line
        assert DB_PASSWORD not in result.stderr + result.stdout


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://billing:{DB_PASSWORD}@127.0.0.1:{free_port()}/ticketbill"
    result = ticketbill("--debug", "--env-file", env_file(tmp_path, DATABASE_URL=url), "invoices", "list")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "OperationalError" in result.stderr


def test_configuration_error_never_echoes_the_database_password(tmp_path: Path) -> None:
    url = f"mysql://billing:{DB_PASSWORD}@db.example.com/ticketbill"
    result = ticketbill("--env-file", env_file(tmp_path, DATABASE_URL=url), "invoices", "list")
    assert result.returncode == 2
    assert one_line(result) == (
        "configuration error: DATABASE_URL: 'mysql://billing:***@db.example.com/ticketbill' "
        "is neither sqlite:/// nor postgresql://"
    )


def test_init_says_what_it_migrated_and_never_the_password(tmp_path: Path) -> None:
    path = env_file(tmp_path)
    first = ticketbill("--env-file", path, "init")
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout and "migration(s) (0001, 0002" in first.stdout
    again = ticketbill("--env-file", path, "init")
    assert again.returncode == 0 and "schema up to date" in again.stdout


def test_data_directory_not_writable() -> None:
    with tempfile.TemporaryDirectory() as name:  # pytest's tmp_path is private to root
        base = Path(name)
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        path = env_file(base, DATA_DIR=str(locked / "data"))
        root = os.geteuid() == 0  # root writes anywhere: run as nobody
        for command in (["init"], ["invoices", "list"]):
            result = ticketbill("--env-file", path, *command, as_nobody=root)
            assert result.returncode == 1
            line = one_line(result)
            assert line == (f"not writable: {locked / 'data'} (Permission denied; running as "
                            f"{'nobody' if root else getpass.getuser()}; check the owner of DATA_DIR)")


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    result = ticketbill("--env-file", tmp_path / "nope.env", "invoices", "list")
    assert result.returncode == 2
    assert one_line(result) == f"configuration error: --env-file: {tmp_path / 'nope.env'} does not exist"


def test_an_unexpected_error_is_one_line_with_the_debug_hint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ticketbill.sqlite").write_bytes(b"this is not a database" * 100)
    result = ticketbill("--env-file", env_file(tmp_path), "invoices", "list")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("error: DatabaseError: ")
    assert line.endswith("(run again with --debug for the traceback)")
    with pytest.raises(sqlite3.DatabaseError):  # the file really is broken, not the CLI
        sqlite3.connect(data / "ticketbill.sqlite").execute("select 1 from sqlite_master").fetchall()


def test_settings_repr_hides_every_secret() -> None:
    settings = load_settings({
        **SELLER, "HELPDESK_KIND": "zammad", "HELPDESK_URL": "https://zammad.example.com",
        "HELPDESK_TOKEN": "helpdesk-token-secret", "HELPDESK_USER": "billing",
        "HELPDESK_PASSWORD": "helpdesk-password-secret", "PUSH_API_TOKEN": "push-token-secret-0123456789",
        "SMTP_HOST": "mail.example.com", "SMTP_PASSWORD": "smtp-password-secret", "SMTP_SENDER": "a@example.com",
        "DATABASE_URL": f"postgresql+psycopg://billing:{DB_PASSWORD}@db.example.com/ticketbill",
    })
    shown = repr(settings) + str(settings)
    for secret in ("helpdesk-token-secret", "helpdesk-password-secret", "push-token-secret", "smtp-password-secret",
                   DB_PASSWORD):
        assert secret not in shown
    assert "helpdesk_token='***'" in shown and "smtp_password='***'" in shown
    assert "postgresql+psycopg://billing:***@db.example.com/ticketbill" in shown
    assert "helpdesk_user='billing'" in shown and "smtp_host='mail.example.com'" in shown
    assert settings.helpdesk_token == "helpdesk-token-secret"  # masked in the repr only


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        # an unencoded @ or / in the password: everything after the first @ looked like the host
        ("postgresql+psycopg://billing:s3cr@t/pw-secret@db.example.com/ticketbill", ("s3cr", "t/pw-secret")),
        ("postgresql+psycopg://billing:s3cr/t@pw-secret@db.example.com/ticketbill", ("s3cr", "pw-secret")),
        # a port that is not a number: SQLAlchemy's ValueError, which no one-line reader could act on
        (f"postgresql+psycopg://billing:{DB_PASSWORD}@db.example.com:port/ticketbill", (DB_PASSWORD,)),
    ],
)
def test_a_malformed_database_url_is_one_configuration_line_without_any_of_the_password(
    tmp_path: Path, url: str, fragments: tuple[str, ...]
) -> None:
    """Issue 12: a configuration error echoed the database password."""
    result = ticketbill("--env-file", env_file(tmp_path, DATABASE_URL=url), "invoices", "list")
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("configuration error: DATABASE_URL: ")
    for fragment in fragments:
        assert fragment not in result.stderr + result.stdout


def test_settings_repr_hides_passwords_in_every_url() -> None:
    """Issue 12: the settings object's repr held the helpdesk token and passwords; a URL with
    credentials in it (a helpdesk behind basic auth, an encoded @ in the database password)
    must not bring them back."""
    settings = load_settings({
        **SELLER, "HELPDESK_KIND": "zammad", "HELPDESK_URL": "https://billing:helpdesk-url-secret@zammad.example.com",
        "HELPDESK_TOKEN": "helpdesk-token-secret",
        "DATABASE_URL": "postgresql+psycopg://billing:db%40secret%2Fpart@db.example.com/ticketbill",
    })
    shown = repr(settings)
    for secret in ("helpdesk-url-secret", "helpdesk-token-secret", "db%40secret", "secret%2Fpart"):
        assert secret not in shown
    assert "https://billing:***@zammad.example.com" in shown


@pytest.mark.parametrize("command", [["verify"], ["users", "list"], ["contracts", "list"], ["review", "list"],
                                     ["contingents"]])
def test_database_down_is_one_line_in_every_command_group(tmp_path: Path, command: list[str]) -> None:
    """Commands with settings of their own said `… Connection refused ()`: the URL's place was empty."""
    port = free_port()
    url = f"postgresql+psycopg://billing:{DB_PASSWORD}@127.0.0.1:{port}/ticketbill"
    result = ticketbill("--env-file", env_file(tmp_path, DATABASE_URL=url), *command)
    assert result.returncode == 1
    line = one_line(result)
    assert f'port {port} failed: Connection refused' in line and not line.endswith("()"), line
    assert DB_PASSWORD not in result.stderr + result.stdout
