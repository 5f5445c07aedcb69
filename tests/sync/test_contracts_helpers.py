"""Helpers (no tests) for end-to-end contract tests: import contracts, run the sync at a chosen time."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from sync_fixtures import Sidecar

from addon.contracts import import_document
from addon.db import transaction
from addon.invoicing.render_pdf import render_pdf
from addon.sync.jobs import RunResult, run_sync

ANNA, JONAS, LENA, TOBIAS = 3, 4, 5, 6
LOGINS = {ANNA: "anna.becker@nordlicht-it.example", JONAS: "jonas.schulz@nordlicht-it.example",
          LENA: "lena.hoffmann@nordlicht-it.example", TOBIAS: "tobias.wagner@nordlicht-it.example"}
REMOTE, ONSITE, EMERGENCY, INTERNAL = 1, 2, 3, 4


def import_contracts(sidecar: Sidecar, document: dict[str, Any]) -> None:
    with transaction(sidecar.factory) as session:
        import_document(session, "zammad", document)


def run_at(sidecar: Sidecar, moment: datetime) -> RunResult:
    """One sync run whose clock (and so its monthly schedule) is `moment`."""
    return run_sync(sidecar.factory, sidecar.connector, sidecar.settings, render_pdf, now=lambda: moment)


def pdf_text(path: str) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(Path(path).read_bytes())).pages)
