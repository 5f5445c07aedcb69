"""Fault injection, clock, merge/delete, persistence, seed determinism, control API, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import requests
from zammad_sandbox_client import Client

from connectors.sandbox.zammad import ZammadSandbox
from connectors.sandbox.zammad_seed import build_seed


def test_fail_next_then_recover(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.fail_next(2, status=503, retry_after=1, path="/tickets/")
    first = admin.get("/tickets/1")
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert admin.get("/users/me").status_code == 200  # path filter: not consumed
    assert admin.get("/tickets/1").status_code == 503
    assert admin.get("/tickets/1").status_code == 200


def test_failed_write_is_not_executed(sandbox: ZammadSandbox, admin: Client) -> None:
    before = len(sandbox.bookings(2))
    sandbox.fail_next(1, status=500, method="POST")
    failed = admin.post("/tickets/2/time_accountings", json={"time_unit": 5})
    assert failed.status_code == 500 and failed.json()["error"].startswith("Error ID")
    assert len(sandbox.bookings(2)) == before


def test_rate_limit_with_retry_after(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.rate_limit_next(retry_after=3)
    limited = admin.get("/tickets/1")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert admin.get("/tickets/1").status_code == 200


def test_malformed_json(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.malformed_next(path="/tickets/search")
    broken = admin.post("/tickets/search", json={"query": "a"})
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    assert isinstance(admin.post("/tickets/search", json={"query": "a"}).json(), list)


def test_search_page_loop(sandbox: ZammadSandbox, admin: Client) -> None:
    body = {"condition": {"ticket.state_id": {"operator": "is", "value": ["4"]}},
            "sort_by": "id", "order_by": "asc", "per_page": 10}
    page1 = admin.post("/tickets/search", json={**body, "page": 1}).json()
    sandbox.repeat_search_page(1)
    looped = admin.post("/tickets/search", json={**body, "page": 2}).json()
    assert [t["id"] for t in looped] == [t["id"] for t in page1]
    honest = admin.post("/tickets/search", json={**body, "page": 2}).json()
    assert honest[0]["id"] > page1[-1]["id"]


def test_delay_fault(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.delay_next(seconds=0.3)
    with pytest.raises(requests.exceptions.Timeout):
        admin.get("/tickets/1", timeout=0.1)
    sandbox.clear_faults()


def test_delete_and_merge(sandbox: ZammadSandbox, admin: Client) -> None:
    rows_before = sandbox.bookings(9)
    assert rows_before
    sandbox.merge_ticket(9, 10)
    source = admin.get("/tickets/9", params={"expand": True}).json()
    assert source["state"] == "merged"
    assert source["article_ids"] == []
    assert sandbox.bookings(9) == rows_before  # time rows stay on the merged source
    sandbox.delete_ticket(10)
    assert admin.get("/tickets/10").status_code == 404
    assert admin.get("/tickets/10/time_accountings").status_code == 404
    merged_api = admin.put("/ticket_merge/11/31012")
    assert merged_api.status_code == 200 and merged_api.json()["result"] == "success"


def test_clock_controls_timestamps(sandbox: ZammadSandbox, admin: Client) -> None:
    sandbox.set_now(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    row = admin.post("/tickets/2/time_accountings", json={"time_unit": 10}).json()
    assert row["created_at"] == "2026-03-01T12:00:00.000Z"
    sandbox.advance(90)
    assert admin.put("/tickets/2", json={}).json()["updated_at"] == "2026-03-01T12:01:30.000Z"
    sandbox.set_now(None)
    assert sandbox.now().year >= 2026


def test_seed_is_deterministic_and_shaped_for_billing() -> None:
    seed = build_seed(date(2025, 7, 1))
    assert json.dumps(seed, default=str) == json.dumps(build_seed(date(2025, 7, 1)), default=str)
    tickets = seed["tickets"].values()
    assert len(seed["organizations"]) == 3 and len(tickets) == 40
    states = Counter(t["state_id"] for t in tickets)
    assert states[5] == 1 and states[4] >= 30 and sum(states[s] for s in (1, 2, 3)) >= 3
    rows = list(seed["time_accountings"].values())
    assert 140 <= len(rows) <= 170
    assert {r["created_by_id"] for r in rows} == {3, 4, 5, 6}
    moments = [datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in rows]
    assert any(m.weekday() >= 5 for m in moments)
    assert any(m.hour >= 21 for m in moments)
    assert any(r["type_id"] == 4 for r in rows)
    assert all(m < datetime(2025, 7, 1, tzinfo=UTC) for m in moments)
    assert min(moments) > datetime(2025, 4, 25, tzinfo=UTC)
    for row in rows:  # time is booked while a ticket is open, never before it exists
        ticket = seed["tickets"][row["ticket_id"]]
        assert ticket["created_at"] < row["created_at"]
        assert ticket["last_close_at"] is None or row["created_at"] < ticket["last_close_at"]
    shifted = build_seed(date(2026, 11, 25))
    assert shifted["tickets"][1]["created_at"].startswith("2026")


def test_state_file_round_trip(tmp_path: Path) -> None:
    state_file = tmp_path / "zammad.json"
    with ZammadSandbox.running(state_file=state_file, restart_seconds=0) as first:
        headers = {"Authorization": f"Token token={first.admin_token}"}
        created = requests.post(first.api_url + "/tickets/2/time_accountings", timeout=5,
                                json={"time_unit": 42}, headers=headers).json()
        first.set_now("2027-01-01T00:00:00Z")
    assert state_file.exists()
    with ZammadSandbox.running(state_file=state_file, restart_seconds=0) as second:
        assert second.bookings(2)[-1] == created
        assert second.now() == datetime(2027, 1, 1, tzinfo=UTC)
        again = second.book_time(2, 5, article=False)
        assert again["id"] == created["id"] + 1


def test_control_api(sandbox: ZammadSandbox, admin: Client) -> None:
    control = sandbox.url + "/__sandbox__"
    assert requests.get(control + "/status", timeout=5).json()["tickets"] == 40
    requests.post(control + "/faults", json={"kind": "status", "status": 502, "count": 1},
                  timeout=5)
    assert admin.get("/users/me").status_code == 502
    ticket = requests.post(control + "/tickets", json={"title": "Per Steuerung",
                                                       "organization_id": 3}, timeout=5).json()
    booking = requests.post(control + f"/tickets/{ticket['id']}/bookings",
                            json={"minutes": 25, "type_id": 2}, timeout=5).json()
    assert booking["time_unit"] == "25.0"
    closed = requests.post(control + f"/tickets/{ticket['id']}/close", json={}, timeout=5)
    assert closed.json()["state_id"] == 4
    requests.post(control + "/version", json={"version": "6.4"}, timeout=5)
    assert "tickets" in admin.get("/tickets/search", params={"query": "Steuerung"}).json()
    requests.post(control + "/clock", json={"now": "2031-05-05T05:05:05Z"}, timeout=5)
    assert sandbox.now().year == 2031
    assert requests.delete(control + f"/tickets/{ticket['id']}", timeout=5).status_code == 200


def test_cli_serves_and_persists(tmp_path: Path) -> None:
    state_file = tmp_path / "cli.json"
    with ZammadSandbox.running() as probe:  # borrow a free port number
        port = probe.port
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.sandbox.zammad", "--port", str(port),
         "--state", str(state_file), "--restart-seconds", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        for _ in range(100):
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/v1/users/me", timeout=1,
                                        headers={"Authorization":
                                                 "Token token=sandbox-admin-token"})
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert response.json()["id"] == 2
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert json.loads(state_file.read_text(encoding="utf-8"))["tickets"]["1"]["id"] == 1
