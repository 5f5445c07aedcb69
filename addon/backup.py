"""`ticketbill backup` and `ticketbill restore`: one consistent archive of database and invoices.

The archive (a gzip'd tar, mode 0600) holds `manifest.json`, the database — a copy made with
SQLite's online backup API, or `pg_dump -Fc` of the sidecar's schema — and every file under
DATA_DIR/invoices (the hybrid PDFs and XMLs), each listed in the manifest with its SHA-256.

Consistency: the database copy is taken first, as one snapshot (SQLite's backup API; on
PostgreSQL a REPEATABLE READ transaction whose snapshot pg_dump shares via `--snapshot`), and
the invoice files after it. Issuing writes an invoice's files before it commits its row, so
every invoice in the copy has its files in the archive; the manifest also lists, from that
same snapshot, each issued invoice with the hashes stored on its row, and the backup checks
the files against them (a mismatch means a file changed after issue: it is reported and the
command exits 1, but the archive is still written — a backup is most needed then).

Restore checks every hash before it writes anything, refuses a database that already holds
tables and an invoice directory that already holds files (unless `force`), restores files and
database, migrates the database to the current schema, and verifies row counts and the
stored invoice hashes against the restored files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url

from addon.db import current_revisions, make_engine, upgrade
from addon.settings import Settings, mask_url

FORMAT = "ticketbill-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/ticketbill.sqlite"
PG_MEMBER = "database/ticketbill.pgdump"
FILES_PREFIX = "invoices/"
CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup or restore that cannot proceed; `str()` is the one line shown to the admin."""


@dataclass
class BackupReport:
    """What `backup` wrote; `problems` are stored files that no longer match their row."""

    path: Path
    sha256: str
    files: int
    invoices: int
    rows: dict[str, int]
    problems: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    """What `restore` did: files written, tables and rows restored, migrations applied."""

    files: int
    rows: dict[str, int]
    migrations: list[str]
    invoices_verified: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _ticketbill_version() -> str:
    try:
        return version("ticketbill")
    except PackageNotFoundError:
        return "unknown"


def _table_rows(connection: Connection) -> dict[str, int]:
    """Rows per table of the sidecar's schema, as the connection's snapshot sees them."""
    tables = sorted(inspect(connection).get_table_names())
    return {name: int(connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()) for name in tables}


def _issued_invoices(connection: Connection) -> list[dict[str, Any]]:
    if "invoice" not in inspect(connection).get_table_names():
        return []
    rows = connection.execute(text(
        "SELECT number, pdf_path, pdf_sha256, xml_path, xml_sha256 FROM invoice "
        "WHERE number IS NOT NULL ORDER BY id"
    )).mappings().all()
    return [dict(row) for row in rows]


# -- PostgreSQL tools ---------------------------------------------------------------------------

def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI for pg_dump/pg_restore and the environment carrying the password (a
    password on a command line is visible to every user in `ps`)."""
    url = make_url(database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _major(text_: str) -> int:
    match = re.search(r"(\d+)(?:\.\d+)?", text_)
    if match is None:
        raise BackupError(f"cannot read a PostgreSQL version from {text_!r}")
    return int(match.group(1))


def pg_tool(name: str, server_major: int) -> str:
    """`pg_dump`/`pg_restore` of exactly the server's major version.

    Why exactly: an older pg_dump refuses a newer server, and a newer one writes settings an
    older server's restore does not know. Debian keeps each major under /usr/lib/postgresql.
    """
    candidates = [Path(f"/usr/lib/postgresql/{server_major}/bin/{name}")]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    found = []
    for candidate in candidates:
        if not candidate.is_file():
            continue
        output = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, check=False).stdout
        major = _major(output)
        if major == server_major:
            return str(candidate)
        found.append(f"{candidate} is {major}")
    have = f" ({'; '.join(found)})" if found else ""
    raise BackupError(
        f"{name} for PostgreSQL {server_major} not found{have}: apt-get install postgresql-client-{server_major}"
    )


def _server_major(connection: Connection) -> int:
    return int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _current_schema(connection: Connection) -> str | None:
    return connection.execute(text("SELECT current_schema()")).scalar_one_or_none()


# -- backup -------------------------------------------------------------------------------------

@contextmanager
def _database_copy(settings: Settings, workdir: Path) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """Yield (member name, file, facts) of one consistent copy of the database.

    `facts` holds the rows per table, the schema revisions and the issued invoices with their
    stored hashes — all read from the very snapshot that was copied.
    """
    url = settings.database_url
    if url.startswith("sqlite"):
        source = make_url(url).database
        if not source or not Path(source).is_file():
            raise BackupError(f"there is no database to back up at {url}")
        target = workdir / "ticketbill.sqlite"
        with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
            live.backup(copy)
        copy_engine = make_engine(f"sqlite:///{target}")
        try:
            with copy_engine.connect() as connection:
                facts = {"rows": _table_rows(connection), "invoices": _issued_invoices(connection)}
            facts["revisions"] = current_revisions(copy_engine)
        finally:
            copy_engine.dispose()
        yield SQLITE_MEMBER, target, facts
        return
    engine = make_engine(url)
    try:
        connection = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with connection, connection.begin():
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            schema = _current_schema(connection)
            if schema is None:
                raise BackupError(f"the database at {mask_url(url)} has no schema to back up")
            facts = {"rows": _table_rows(connection), "invoices": _issued_invoices(connection),
                     "schema": schema, "server_major": _server_major(connection)}
            revisions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            facts["revisions"] = sorted(revisions)
            target = workdir / "ticketbill.pgdump"
            uri, env = _libpq(url)
            dump = subprocess.run(
                [pg_tool("pg_dump", facts["server_major"]), "--format=custom", f"--snapshot={snapshot}",
                 f"--schema={schema}", f"--file={target}", f"--dbname={uri}"],
                capture_output=True, text=True, env=env, check=False,
            )
            if dump.returncode != 0:
                raise BackupError(f"pg_dump failed: {(dump.stderr.strip().splitlines() or [dump.returncode])[-1]}")
        yield PG_MEMBER, target, facts
    finally:
        engine.dispose()


def backup(settings: Settings, out: Path, now: datetime | None = None) -> BackupReport:
    """Write the archive to `out` (atomically: a temp file in the same directory, renamed)."""
    now = now or datetime.now(UTC)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ticketbill-backup-") as work, \
            _database_copy(settings, Path(work)) as (member, copy, facts):
        invoice_dir = settings.invoice_dir
        files = sorted(p for p in invoice_dir.rglob("*") if p.is_file() and not p.name.endswith(".tmp")) \
            if invoice_dir.is_dir() else []
        listed = {f"{FILES_PREFIX}{p.relative_to(invoice_dir).as_posix()}": p for p in files}
        hashes = {name: sha256_file(path) for name, path in listed.items()}
        problems = _stored_hash_problems(facts["invoices"], invoice_dir, hashes)
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "created_at": now.isoformat(),
            "ticketbill": _ticketbill_version(),
            "database": {"backend": "sqlite" if member == SQLITE_MEMBER else "postgresql", "member": member,
                         "sha256": sha256_file(copy), "revisions": facts["revisions"], "rows": facts["rows"],
                         **({"schema": facts["schema"]} if "schema" in facts else {})},
            "invoice_dir": str(invoice_dir),
            "files": {name: {"sha256": hashes[name], "size": path.stat().st_size} for name, path in listed.items()},
            "invoices": [_relative_invoice(row, invoice_dir) for row in facts["invoices"]],
        }
        descriptor, partial = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            os.fchmod(descriptor, 0o600)  # customer data: readable by the owner only
            with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
                archive.add(copy, arcname=member)
                for name, path in listed.items():
                    archive.add(path, arcname=name)
            os.replace(partial, out)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    return BackupReport(out, sha256_file(out), len(listed), len(facts["invoices"]), facts["rows"], problems)


def _relative_invoice(row: dict[str, Any], invoice_dir: Path) -> dict[str, Any]:
    entry = {"number": row["number"]}
    for kind in ("pdf", "xml"):
        path, digest = row[f"{kind}_path"], row[f"{kind}_sha256"]
        if path is not None:
            entry[kind] = _member_of(Path(path), invoice_dir)
            entry[f"{kind}_sha256"] = digest
    return entry


def _member_of(path: Path, invoice_dir: Path) -> str:
    try:
        return f"{FILES_PREFIX}{path.relative_to(invoice_dir).as_posix()}"
    except ValueError:
        return str(path)  # outside DATA_DIR/invoices: reported as missing by the hash check


def _stored_hash_problems(invoices: list[dict[str, Any]], invoice_dir: Path, hashes: dict[str, str]) -> list[str]:
    problems = []
    for row in invoices:
        for kind in ("pdf", "xml"):
            path, stored = row[f"{kind}_path"], row[f"{kind}_sha256"]
            if path is None:
                continue
            actual = hashes.get(_member_of(Path(path), invoice_dir))
            if actual is None:
                problems.append(f"{row['number']}: {kind.upper()} {path} is missing")
            elif actual != stored:
                problems.append(f"{row['number']}: {kind.upper()} {path} does not match its stored {kind}_sha256 "
                                "(changed after issue)")
    return problems


def _add_bytes(archive: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(content))


# -- restore ------------------------------------------------------------------------------------

def read_manifest(archive: tarfile.TarFile) -> dict[str, Any]:
    """The manifest, which `backup` writes as the first member (read without a full scan)."""
    first = archive.next()
    handle = archive.extractfile(first) if first is not None and first.name == MANIFEST else None
    if handle is None:
        raise BackupError(f"not a ticketbill backup: it does not start with {MANIFEST}")
    manifest = json.loads(handle.read())
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise BackupError(f"not a ticketbill backup of format version {FORMAT_VERSION}")
    return manifest


def _extract_verified(archive_path: Path, workdir: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """Extract every member into `workdir`, checking each against the manifest, before anything
    is written to the instance. Returns the manifest and member name → extracted file."""
    try:
        archive = tarfile.open(archive_path, mode="r:gz")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"cannot read {archive_path}: {exc}") from None
    extracted: dict[str, Path] = {}
    with archive:
        try:
            manifest = read_manifest(archive)
            expected = {name: entry["sha256"] for name, entry in manifest["files"].items()}
            expected[manifest["database"]["member"]] = manifest["database"]["sha256"]
            for member in archive:
                if member.name == MANIFEST:
                    continue
                if member.name not in expected:
                    raise BackupError(f"refused: {member.name} is in the archive but not in its manifest")
                if not member.isfile() or PurePosixPath(member.name).is_absolute() or ".." in member.name.split("/"):
                    raise BackupError(f"refused: {member.name} is not a plain file inside the archive")
                source = archive.extractfile(member)
                assert source is not None  # isfile() checked
                target = workdir / str(len(extracted))
                digest = _copy_hashed(source, target)
                if digest != expected[member.name]:
                    raise BackupError(f"refused: {member.name} does not match its SHA-256 in the manifest "
                                      "(the archive is damaged or was changed)")
                extracted[member.name] = target
        except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as exc:
            raise BackupError(f"refused: {archive_path} is damaged ({type(exc).__name__}: {exc})") from None
    missing = sorted(set(expected) - set(extracted))
    if missing:
        raise BackupError(f"refused: the manifest lists {missing[0]} (and {len(missing) - 1} more), "
                          "which the archive does not hold")
    return manifest, extracted


def _copy_hashed(source: BinaryIO, target: Path) -> str:
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _database_has_tables(settings: Settings) -> bool:
    url = settings.database_url
    if url.startswith("sqlite"):
        path = make_url(url).database
        if not path or not Path(path).is_file() or Path(path).stat().st_size == 0:
            return False
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if not url.startswith("sqlite") and _current_schema(connection) is None:
                return False
            return bool(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def restore(settings: Settings, archive_path: Path, force: bool = False) -> RestoreReport:
    """Verify the archive, then restore invoice files and database; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="ticketbill-restore-", dir=_work_dir_for(settings)) as work:
        manifest, extracted = _extract_verified(archive_path, Path(work))
        backend = manifest["database"]["backend"]
        here = "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
        if backend != here:
            raise BackupError(f"refused: the archive holds a {backend} database, DATABASE_URL is {here}")
        if manifest["invoice_dir"] != str(settings.invoice_dir):
            raise BackupError(
                f"refused: the archive's invoices belong in {manifest['invoice_dir']}, this instance keeps them in "
                f"{settings.invoice_dir}; issued invoices name their files by path and never change, so set "
                f"DATA_DIR to {Path(manifest['invoice_dir']).parent}"
            )
        if not force and _database_has_tables(settings):
            raise BackupError(f"refused: the database {mask_url(settings.database_url)} is not empty "
                              "(restore --force replaces it)")
        existing = [p for p in settings.invoice_dir.rglob("*") if p.is_file()] if settings.invoice_dir.is_dir() else []
        if existing and not force:
            raise BackupError(f"refused: {settings.invoice_dir} already holds {len(existing)} file(s) "
                              "(restore --force replaces them)")
        files = {name: path for name, path in extracted.items() if name.startswith(FILES_PREFIX)}
        for name, source in files.items():
            target = settings.invoice_dir / name.removeprefix(FILES_PREFIX)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target.with_name(target.name + ".tmp"))
            os.replace(target.with_name(target.name + ".tmp"), target)
        database = extracted[manifest["database"]["member"]]
        if backend == "sqlite":
            _restore_sqlite(settings, database, force)
        else:
            _restore_postgresql(settings, database, manifest["database"]["schema"], force)
    return _verify_restored(settings, manifest, len(files))


def _work_dir_for(settings: Settings) -> Path:
    """Extract next to the data directory (same file system: the final moves are renames)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir


def _restore_sqlite(settings: Settings, database: Path, force: bool) -> None:
    target = Path(make_url(settings.database_url).database or "")
    target.parent.mkdir(parents=True, exist_ok=True)
    if force and target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target.rename(target.with_name(f"{target.name}.before-restore-{stamp}"))
    for suffix in ("-wal", "-shm", "-journal"):  # leftovers of the old file would be replayed onto the new one
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    staged = target.with_name(target.name + ".restoring")
    shutil.copyfile(database, staged)
    os.replace(staged, target)


def _restore_postgresql(settings: Settings, dump: Path, schema: str, force: bool) -> None:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            server_major = _server_major(connection)
            target_schema = _current_schema(connection)
    finally:
        engine.dispose()
    if target_schema not in (None, schema):
        raise BackupError(f"refused: the archive holds schema {schema!r}, DATABASE_URL's search path starts "
                          f"with {target_schema!r}")
    restore_tool = pg_tool("pg_restore", server_major)
    uri, env = _libpq(settings.database_url)
    listing = subprocess.run([restore_tool, "--list", str(dump)], capture_output=True, text=True, check=True).stdout
    if target_schema is not None:  # the schema exists (as `public` always does): restore into it
        creates_schema = re.compile(rf"\b(SCHEMA - |COMMENT - SCHEMA ){re.escape(schema)}\b")
        listing = "\n".join(line for line in listing.splitlines() if not creates_schema.search(line))
    list_file = dump.with_suffix(".list")
    list_file.write_text(listing, encoding="utf-8")
    command = [restore_tool, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
               f"--use-list={list_file}", f"--dbname={uri}", str(dump)]
    if force:
        command[1:1] = ["--clean", "--if-exists"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")


def _verify_restored(settings: Settings, manifest: dict[str, Any], files: int) -> RestoreReport:
    """Rows per table as in the backup, then migrate, then every issued invoice's stored
    hashes (read from the restored rows) against the restored files."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            rows = _table_rows(connection)
            invoices = _issued_invoices(connection)
        for table, want in manifest["database"]["rows"].items():
            if rows.get(table) != want:
                raise BackupError(f"restored database differs from the backup: {table} has {rows.get(table)} rows, "
                                  f"expected {want}")
        migrations = upgrade(engine)
    finally:
        engine.dispose()
    mismatches = _stored_hash_problems(invoices, settings.invoice_dir, {
        f"{FILES_PREFIX}{p.relative_to(settings.invoice_dir).as_posix()}": sha256_file(p)
        for p in settings.invoice_dir.rglob("*") if p.is_file()
    } if settings.invoice_dir.is_dir() else {})
    if mismatches:
        raise BackupError(f"restored, but {len(mismatches)} invoice file(s) do not match their rows: {mismatches[0]}")
    return RestoreReport(files, rows, migrations, len(invoices))
