"""The team lead's overview: what is unbilled, what needs attention, what waits, what came in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from addon import reports
from addon.web.ui.access import requires
from addon.web.ui.common import now, reading, settings

bp = Blueprint("overview", __name__)


def overview_data(db: Session) -> dict[str, Any]:
    """Everything the overview shows (also the JSON API's /overview), from aggregate queries."""
    moment, zone = now(), settings().timezone
    start, end = reports.month_bounds(moment, zone)
    attention_count, attention = reports.attention(db, limit=10)
    without_count, without_time = reports.closed_without_time(db)
    revenue, documents = reports.revenue_between(db, start, end)
    return {
        "work": reports.unbilled_work(db, moment),
        "attention_count": attention_count,
        "attention": [(t, reports.fix_for(t)) for t in attention],
        "drafts": reports.drafts_waiting(db),
        "revenue": revenue,
        "revenue_documents": documents,
        "contingents": reports.contingents(db, reports.current_period(moment, zone)),  # fullest first
        "without_count": without_count,
        "without_time": without_time,
    }


def chart_data(db: Session) -> dict[str, Any]:
    """The overview's four chart series: revenue by month and customer, contingents, booked vs.
    billed hours by agent, write-offs. Fetched by the page after it is shown, so the figures a
    team lead acts on never wait for a year of history."""
    moment, zone = now(), settings().timezone
    periods = [k for k, _s in reports.month_starts(moment, zone, 6)[:-1]]
    return {
        "revenue": reports.revenue_by_month(db, moment, zone),
        "contingents": reports.contingent_history(db, periods),
        "agents": reports.agent_hours(db, moment - timedelta(days=30)),
        "writeoffs": reports.writeoffs_by_month(db, moment, zone),
    }


@bp.get("/")
@requires("view")
def index() -> ResponseReturnValue:
    """Unbilled work by customer and age, attention, drafts, revenue, contingents, charts."""
    with reading() as db:
        return render_template("web/overview.html", **overview_data(db))


@bp.get("/overview/charts.json")
@requires("view")
def charts() -> ResponseReturnValue:
    """The chart series of the overview (JSON, loaded by static/charts.js)."""
    with reading() as db:
        return jsonify(chart_data(db))
