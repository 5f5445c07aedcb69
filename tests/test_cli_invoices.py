"""`ticketbill invoices ...`: listing, refusals with one clear line and exit code 1."""

from __future__ import annotations

from pathlib import Path

from test_cli_exports import run, values  # noqa: F401  (fixture)


def test_list_filters_by_state(values: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    assert run(tmp_path, values, "invoices", "mark-paid", "RE-2026-00002").exit_code == 0

    everything = run(tmp_path, values, "invoices", "list")
    paid = run(tmp_path, values, "invoices", "list", "--state", "paid")

    assert everything.exit_code == 0 and paid.exit_code == 0
    assert [line.split()[1] for line in everything.output.splitlines()] == [
        "RE-2026-00001", "RE-2026-00002", "RE-2026-00003"]
    [line] = paid.output.splitlines()
    assert "RE-2026-00002" in line and " paid " in line and "119.00" in line
    assert run(tmp_path, values, "invoices", "list", "--state", "draft").output == ""


def test_refusals_are_one_line_with_exit_code_1(values: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    assert run(tmp_path, values, "invoices", "cancel", "RE-2026-00001", "--then", "rebill").exit_code == 0
    cases = [
        (("invoices", "approve", "999"), "there is no draft 999"),
        (("invoices", "approve", "1"), "1 is not a draft but invoice RE-2026-00001"),
        (("invoices", "discard", "1"), "is not a draft"),
        (("invoices", "cancel", "RE-2026-00001", "--then", "rebill"), "RE-2026-00001 is cancelled"),
        (("invoices", "cancel", "ST-2026-00001", "--then", "hold"), "ST-2026-00001 is a cancellation invoice"),
        (("invoices", "cancel", "RE-1999-00001", "--then", "rebill"), "there is no invoice RE-1999-00001"),
        (("invoices", "mark-paid", "RE-2026-00001"), "RE-2026-00001 is cancelled"),
        (("invoices", "log", "RE-1999-00001"), "there is no invoice RE-1999-00001"),
        (("invoices", "edit", "1", "--line", "1", "Neu"), "1 is not a draft but invoice RE-2026-00001"),
    ]
    for args, message in cases:
        result = run(tmp_path, values, *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("refused: ") and message in result.output, (args, result.output)
        assert len(result.output.splitlines()) == 1
    log = run(tmp_path, values, "invoices", "log", "ST-2026-00001")
    assert [line.split()[4] for line in log.output.splitlines()] == ["issue"]
