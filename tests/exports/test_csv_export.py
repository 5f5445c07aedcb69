"""Plain CSV of invoices and lines for a period."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
import snapshot_samples as samples

from addon.exports.csv_export import (
    INVOICE_COLUMNS,
    LINE_COLUMNS,
    csv_files,
    invoices_csv,
    lines_csv,
)

INVOICES = [samples.cancellation(), samples.invoice(), samples.reverse_charge(),
            samples.small_business(issue_date=date(2026, 10, 31))]
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_invoices_of_the_period_with_header_sorted_by_date_and_number() -> None:
    data = invoices_csv(INVOICES, *NOVEMBER)
    assert data.decode("utf-8").split("\r\n")[0] == ",".join(INVOICE_COLUMNS)
    found = rows(data)
    assert [r["number"] for r in found] == ["RE-2026-00042", "RE-2026-00043"]
    first = found[0]
    assert first["buyer_name"] == "Müller & Söhne Maschinenbau KG"
    assert (first["net"], first["vat"], first["gross"]) == ("1297.60", "246.54", "1544.14")
    assert first["issue_date"] == "2026-11-30" and first["due_date"] == "2026-12-14"
    assert first["vat_breakdown"] == "S 19%: 1297.60 + 246.54"
    assert found[1]["buyer_vat_id"] == "ATU12345678"


def test_cancellations_carry_their_reference() -> None:
    found = rows(invoices_csv(INVOICES, date(2026, 12, 1), date(2026, 12, 31)))
    assert [(r["number"], r["type_code"], r["preceding_number"], r["preceding_date"])
            for r in found] == [("RE-2026-00050", "381", "RE-2026-00042", "2026-11-30")]


def test_lines_of_the_period() -> None:
    data = lines_csv(INVOICES, *NOVEMBER)
    assert data.decode("utf-8").split("\r\n")[0] == ",".join(LINE_COLUMNS)
    found = rows(data)
    assert len(found) == 5 + 2
    goodwill = found[3]
    assert (goodwill["invoice_number"], goodwill["position"], goodwill["quantity"],
            goodwill["unit"], goodwill["net"]) == ("RE-2026-00042", "4", "-0.25", "HUR", "-23.75")
    assert found[0]["service_start"] == "2026-11-04"
    assert found[5]["vat_category"] == "AE"


def test_csv_files_are_named_after_the_period() -> None:
    invoices_file, lines_file = csv_files(INVOICES, *NOVEMBER)
    assert invoices_file.filename == "invoices_20261101-20261130.csv"
    assert lines_file.filename == "invoice_lines_20261101-20261130.csv"
    assert invoices_file.mimetype == lines_file.mimetype == "text/csv"


def test_reversed_period_is_an_error() -> None:
    with pytest.raises(ValueError, match="after its end"):
        invoices_csv(INVOICES, date(2026, 12, 1), date(2026, 11, 1))
