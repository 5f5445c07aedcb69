"""`/healthz` (the process answers) and `/readyz` (the deployment does its job, or why not).

Both answer without authentication and show no ticket data: a load balancer or a monitoring
check calls them. `/readyz` answers 200 when every check is ok and 503 with the reasons
otherwise; see `addon.health` for the checks.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from addon.health import readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Alive: answers without touching the database, so a restart loop is never caused by it."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 `{"status": "ok", "checks": …}` or 503 `{"status": "degraded", "reasons": […], …}`."""
    sidecar = current_app.extensions["ticketbill"]
    state = readiness(sidecar.settings, sidecar.engine, sidecar.sessions,
                      current_app.extensions["ticketbill.helpdesk_probe"], datetime.now(UTC))
    return jsonify(state.as_json()), 200 if state.ready else 503
