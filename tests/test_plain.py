"""`addon.plain.plain` serialises exactly as `dataclasses.asdict` did: stored snapshots, drafts
and billing documents keep their bytes (their hashes are checked by `ticketbill verify`)."""

from __future__ import annotations

import json
from dataclasses import asdict

from addon.billing import BillingRequest, bill
from addon.plain import plain
from bench.bench_billing import contract, entries
from bench.bench_pdf import RECIPES, sample_invoice


def test_a_snapshot_serialises_as_asdict_did() -> None:
    for pages, recipe in RECIPES.items():
        snapshot = sample_invoice(pages, *recipe)
        assert snapshot.to_json() == json.dumps(asdict(snapshot), sort_keys=True, default=str, ensure_ascii=False)


def test_an_engine_document_serialises_as_asdict_did() -> None:
    items, agents = entries(400)
    result = bill(BillingRequest(contract=contract(), agents=agents, entries=items, period="2026-12"))
    for document in result.state.documents:
        assert json.dumps(plain(document), default=str) == json.dumps(asdict(document), default=str)
    assert json.dumps(plain(result.lines), default=str) == json.dumps([asdict(x) for x in result.lines], default=str)
