"""`ticketbill demo` (the README's first command) on both sandboxes: invoices, then nothing new."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from addon.db import migrated
from addon.demo import run_demo
from addon.models import Invoice, Outbox


def invoices_and_writes(data_dir: Path) -> tuple[int, int]:
    with migrated(f"sqlite:///{data_dir / 'ticketbill.sqlite'}") as factory, factory() as session:
        invoices = session.execute(select(func.count()).select_from(Invoice)).scalar_one()
        writes = session.execute(select(func.count()).select_from(Outbox)).scalar_one()
    return invoices, writes


@pytest.mark.parametrize("helpdesk", ["zammad", "otrs"])
def test_demo_issues_invoices_and_a_second_run_creates_nothing(helpdesk: str, tmp_path: Path) -> None:
    assert run_demo(helpdesk, tmp_path, keep_running=False, port=0, sidecar_port=0) == 0
    first = invoices_and_writes(tmp_path)
    assert first[0] >= 15
    assert len(list((tmp_path / "invoices").glob("*.pdf"))) >= first[0]

    assert run_demo(helpdesk, tmp_path, keep_running=False, port=0, sidecar_port=0) == 0
    assert invoices_and_writes(tmp_path) == first
