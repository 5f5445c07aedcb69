"""`ticketbill backup` / `restore` round trip on SQLite and PostgreSQL: real invoices issued by a
sync against the sandbox (one cancelled), the database and the invoice directory lost, the
archive restored: the same rows in every table, the same file bytes, the stored invoice
hashes matching the restored files. A damaged archive and a non-empty database are refused.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, inspect, select, text
from sync_fixtures import SELLER, Sidecar, closed_ticket

from addon.backup import BackupError, backup, pg_tool, restore
from addon.cli import main
from addon.db import make_engine
from addon.models import Invoice
from addon.settings import Settings

REMOTE, ONSITE = 1, 2


def cli(sidecar: Sidecar, tmp_path: Path, *args: str) -> Result:
    env_file = tmp_path / "cli.env"
    values = {"HELPDESK_KIND": "zammad", "HELPDESK_URL": sidecar.sandbox.url,
              "HELPDESK_TOKEN": sidecar.sandbox.admin_token, "DATABASE_URL": sidecar.settings.database_url,
              "DATA_DIR": str(sidecar.settings.data_dir), "PUBLIC_URL": sidecar.settings.public_url, **SELLER}
    env_file.write_text("".join(f"{key}='{value}'\n" for key, value in values.items()), encoding="utf-8")
    return CliRunner().invoke(main, ["--env-file", str(env_file), *args])


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    with engine.connect() as connection:
        tables = sorted(inspect(connection).get_table_names())
        return {t: sorted((tuple(r) for r in connection.execute(text(f'SELECT * FROM "{t}"'))), key=repr)
                for t in tables}


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def lose_everything(settings: Settings) -> None:
    """What a dead disk (SQLite) or a dropped database (PostgreSQL) leaves: nothing, but an
    empty schema, as a freshly created database has `public`."""
    shutil.rmtree(settings.invoice_dir)
    if settings.database_url.startswith("sqlite"):
        database = Path(settings.database_url.removeprefix("sqlite:///"))
        for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
            path.unlink(missing_ok=True)
        return
    engine = make_engine(settings.database_url)
    with engine.begin() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


@pytest.fixture
def issued(sidecar: Sidecar, tmp_path: Path) -> Sidecar:
    """Three tickets invoiced, the first invoice cancelled (a 381 and released entries)."""
    sidecar.import_customers(tmp_path, [1, 2])
    for title, org in (("Drucker", 1), ("Mailserver", 2), ("VPN", 1)):
        closed_ticket(sidecar.sandbox, title, org, [(50, 3, REMOTE), (20, 4, ONSITE)])
    assert sidecar.run().ok
    cancelled = cli(sidecar, tmp_path, "invoices", "cancel", "RE-2026-00001", "--reason", "Doppelt")
    assert cancelled.exit_code == 0, cancelled.output
    sidecar.factory.kw["bind"].dispose()  # the restore replaces the database under this pool
    return sidecar


def test_round_trip_gives_the_same_rows_and_bytes(issued: Sidecar, tmp_path: Path) -> None:
    settings = issued.settings
    engine = make_engine(settings.database_url)
    before, files_before = everything(engine), files_of(settings.invoice_dir)
    engine.dispose()
    assert len(before["invoice"]) == 4 and len(before["audit_log"]) >= 4 and before["billed_entry"]
    assert sum(name.endswith(".pdf") for name in files_before) == 4
    assert sum(name.endswith(".xml") for name in files_before) == 4

    report = backup(settings, tmp_path / "backup.tar.gz")
    assert report.problems == [] and report.files == 8 and report.invoices == 4
    assert (tmp_path / "backup.tar.gz").stat().st_mode & 0o777 == 0o600
    lose_everything(settings)

    restored = restore(settings, tmp_path / "backup.tar.gz")

    assert restored.files == 8 and restored.invoices_verified == 4 and restored.migrations == []
    engine = make_engine(settings.database_url)
    try:
        assert everything(engine) == before
        with engine.connect() as connection:
            for number, pdf, pdf_sha, xml, xml_sha in connection.execute(select(
                    Invoice.number, Invoice.pdf_path, Invoice.pdf_sha256, Invoice.xml_path, Invoice.xml_sha256)):
                assert hashlib.sha256(Path(pdf).read_bytes()).hexdigest() == pdf_sha, number
                assert hashlib.sha256(Path(xml).read_bytes()).hexdigest() == xml_sha, number
    finally:
        engine.dispose()
    assert files_of(settings.invoice_dir) == files_before

    again = cli(issued, tmp_path, "restore", str(tmp_path / "backup.tar.gz"))
    assert again.exit_code == 1
    assert "is not empty (restore --force replaces it)" in again.output
    forced = cli(issued, tmp_path, "restore", "--force", str(tmp_path / "backup.tar.gz"))
    assert forced.exit_code == 0, forced.output
    engine = make_engine(settings.database_url)
    try:
        assert everything(engine) == before
    finally:
        engine.dispose()


def test_a_damaged_archive_is_refused_before_anything_is_written(issued: Sidecar, tmp_path: Path) -> None:
    settings = issued.settings
    backup(settings, tmp_path / "backup.tar.gz")
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(tmp_path / "backup.tar.gz", "r:gz") as source, tarfile.open(damaged, "w:gz") as target:
        for member in source:
            content = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("RE-2026-00002.pdf"):
                content = content[:1000] + bytes([content[1000] ^ 0x01]) + content[1001:]  # one bit flipped
            member.size = len(content)
            target.addfile(member, io.BytesIO(content))
    lose_everything(settings)

    with pytest.raises(BackupError, match=r"refused: invoices/\S*RE-2026-00002\.pdf does not match its SHA-256"):
        restore(settings, damaged)
    assert not settings.invoice_dir.exists() or files_of(settings.invoice_dir) == {}
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes((tmp_path / "backup.tar.gz").read_bytes()[:-4096])
    with pytest.raises(BackupError, match=r"refused: .*damaged"):
        restore(settings, truncated)


def test_backup_cli_prints_the_archive_and_its_hash(issued: Sidecar, tmp_path: Path) -> None:
    result = cli(issued, tmp_path, "backup", "--out", str(tmp_path / "b.tar.gz"))
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256((tmp_path / "b.tar.gz").read_bytes()).hexdigest()
    assert f"archive sha256 {digest}" in result.output
    assert "8 invoice files (4 issued documents)" in result.output


def test_pg_dump_must_match_the_server() -> None:
    with pytest.raises(BackupError, match=r"pg_dump for PostgreSQL 99 not found .*apt-get install "
                                          r"postgresql-client-99"):
        pg_tool("pg_dump", 99)
    assert pg_tool("pg_dump", 15).endswith("pg_dump")
