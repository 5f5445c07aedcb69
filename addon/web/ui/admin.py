"""Configuration (admin): customers, contracts (with surcharge windows and rates), shared rates,
the catalogue (activity types, agent roles), number series, users and API tokens.

Every form goes through the same validating import the CLI uses (`import_customer_document`,
`contracts.import_document`); its error names the entry and key, which is shown next to that
field. Nothing is written unless the whole form is valid.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, EmailField, SelectChoice, SelectField, StringField
from wtforms.validators import Email, Length, Optional

from addon.contracts import CONTRACT_KEYS, ContractImportError, contract_json, export_document, import_document
from addon.contracts.coverage import covered_tickets, preview_contract, recent
from addon.contracts.preview import preview_import
from addon.customers import ADDRESS_FIELDS, CustomerImportError, import_customer_document
from addon.models import (
    ActivityType,
    AgentRole,
    ApiToken,
    AppUser,
    Contract,
    Customer,
    GlobalRate,
    Invoice,
    NumberSeries,
    Ticket,
)
from addon.users import ROLES, UserError, create_user, issue_token, revoke_token, update_user
from addon.web.ui.access import requires
from addon.web.ui.common import now, reading, settings, writing

bp = Blueprint("admin", __name__, url_prefix="/admin")

CUSTOMER_FIELDS = ("legal_name", "street", "postcode", "city", "country", "vat_id", "customer_number", "email",
                   "hourly_rate", "timezone", "language", "debtor_account", "buyer_reference")


class CustomerForm(FlaskForm):
    legal_name = StringField(_l("Legal name"), validators=[Length(max=200)])
    street = StringField(_l("Street"), validators=[Length(max=200)])
    postcode = StringField(_l("Postcode"), validators=[Length(max=20)])
    city = StringField(_l("City"), validators=[Length(max=100)])
    country = StringField(_l("Country (ISO code)"), default="DE", validators=[Length(max=2)])
    vat_id = StringField(_l("VAT ID"), validators=[Length(max=20)])
    customer_number = StringField(_l("Customer number"), validators=[Length(max=50)])
    email = EmailField(_l("Invoice e-mail"), validators=[Optional(), Email(check_deliverability=False)])
    hourly_rate = StringField(_l("Hourly rate (net)"))
    timezone = StringField(_l("Time zone"), validators=[Length(max=64)])
    language = SelectField(_l("Invoice language"), choices=[SelectChoice("", "—"), SelectChoice("de", "Deutsch"),
                                                                SelectChoice("en", "English")])
    debtor_account = StringField(_l("DATEV debtor account"), validators=[Length(max=9)])
    buyer_reference = StringField(_l("Buyer reference (Leitweg-ID)"), validators=[Length(max=100)])
    approval_required = BooleanField(_l("Invoices wait as drafts for approval"))
    xrechnung = BooleanField(_l("Public buyer: also send XRechnung"))


def _field_of(message: str) -> str | None:
    """`customers[0].vat_id: …` → `vat_id`; `contracts[0] (X).rounding.increment: …` → `rounding_increment`."""
    match = re.match(r"^\w+\[\d+\](?: \([^)]*\))?\.([a-z_]+)(?:\[(\d+)\])?(?:\.([a-z_]+))?", message)
    if match is None:
        return None
    key, index, sub = match.groups()
    if index is not None:
        return f"{key}-{index}-{sub}" if sub else key
    if key in ("rounding", "assign") and sub:
        return f"{key}_{sub}"
    if key in ADVANCED_KEYS:
        return "advanced"
    return key


@bp.get("/customers")
@requires("config")
def customers() -> ResponseReturnValue:
    """All customers the sync has seen, whether their billing data is complete, their tickets."""
    with reading() as db:
        rows = db.execute(select(Customer).order_by(Customer.name)).scalars().all()
        open_counts = dict(db.execute(select(Ticket.customer_id, func.count()).where(
            Ticket.billing_status == "needs_attention").group_by(Ticket.customer_id)).all())
        return render_template("web/admin/customers.html", rows=rows, attention=open_counts)


@bp.route("/customers/<int:customer_id>", methods=["GET", "POST"])
@requires("config")
def customer(customer_id: int) -> ResponseReturnValue:
    """Edit one customer's billing data (field-level errors from the import's validation)."""
    with writing() as db:
        row = db.get(Customer, customer_id)
        if row is None:
            abort(404)
        form = CustomerForm(obj=row if request.method == "GET" else None)
        if request.method == "GET":
            form.hourly_rate.data = str(row.hourly_rate) if row.hourly_rate is not None else ""
            form.language.data = row.language or ""
        if form.validate_on_submit():
            item: dict[str, Any] = {"remote_id": row.remote_id, "name": row.name}
            for key in CUSTOMER_FIELDS:
                value = (getattr(form, key).data or "").strip()
                if value:
                    item[key] = value.replace(",", ".") if key == "hourly_rate" else value
            item["approval_required"] = bool(form.approval_required.data)
            item["xrechnung"] = bool(form.xrechnung.data)
            savepoint, saved = db.begin_nested(), False
            try:
                for key in CUSTOMER_FIELDS:  # cleared fields are cleared, not kept
                    if key not in item and key not in ("country",):
                        setattr(row, key, None)
                import_customer_document(db, row.helpdesk, {"customers": [item]},
                                         template_dir=settings().invoice_template_dir)
                db.flush()
                missing = [key for key in ADDRESS_FIELDS if not getattr(row, key)]
                if missing:  # neither this form nor the helpdesk gives the address: nothing is billable
                    savepoint.rollback()
                    for key in missing:
                        getattr(form, key).errors = [*getattr(form, key).errors,
                                                     _("required: invoices need the complete address")]
                else:
                    savepoint.commit()
                    saved = True
            except CustomerImportError as exc:
                savepoint.rollback()
                field = _field_of(str(exc))
                target = getattr(form, field, None) if field else None
                if target is not None:
                    target.errors = [*target.errors, str(exc).split(": ", 1)[-1]]
                else:
                    flash(str(exc), "error")
            if saved:
                flash(_("Saved. Tickets of %(name)s that needed attention are checked again by the next run.",
                        name=row.name), "ok")
                nxt = request.args.get("next", "")
                return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//")
                                else url_for("admin.customer", customer_id=customer_id))
        tickets = db.execute(select(Ticket).where(Ticket.customer_id == row.id, Ticket.billing_status
                                                  == "needs_attention").limit(20)).scalars().all()
        return render_template("web/admin/customer.html", customer=row, form=form, tickets=tickets), (
            422 if form.errors else 200)


# --- contracts --------------------------------------------------------------------------------

SURCHARGE_ROWS, RATE_ROWS = 6, 8
#: The contract keys the form has no fields for: edited as JSON (retainer, travel, markups and
#: whatever the import learns later), validated by the same import.
FORM_KEYS = {"code", "customer", "kind", "trigger", "valid_from", "valid_until", "timezone", "holiday_region",
             "surcharge_policy", "rounding", "surcharges", "rates", "assign"}
ADVANCED_KEYS = frozenset(CONTRACT_KEYS - FORM_KEYS)


def _lines(raw: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\n]", raw or "") if part.strip()]


def contract_document(form: dict[str, str]) -> dict[str, Any]:
    """The contract form as one import entry (numbers and money stay strings for the validator)."""
    item: dict[str, Any] = {k: form.get(k, "").strip() or None for k in (
        "code", "customer", "kind", "trigger", "valid_from", "valid_until", "timezone", "holiday_region",
        "surcharge_policy")}
    item = {k: v for k, v in item.items() if v is not None}
    rounding: dict[str, Any] = {k: form.get(f"rounding_{k}", "").strip() for k in ("scope", "mode")}
    for key in ("increment", "minimum"):
        raw = form.get(f"rounding_{key}", "").strip()
        rounding[key] = int(raw) if raw.isdigit() else raw
    item["rounding"] = {k: v for k, v in rounding.items() if v != ""}
    item["surcharges"] = []
    for i in range(SURCHARGE_ROWS):
        row = {k: form.get(f"surcharges-{i}-{k}", "").strip() for k in ("name", "kind", "from", "to", "percent")}
        if any(row.values()):
            item["surcharges"].append({k: v for k, v in row.items() if v})
    item["rates"] = []
    for i in range(RATE_ROWS):
        row = {k: form.get(f"rates-{i}-{k}", "").strip() for k in ("activity", "agent", "role", "rate")}
        if any(row.values()):
            item["rates"].append({k: v for k, v in row.items() if v})
    item["assign"] = {kind: _lines(form.get(f"assign_{kind}", "")) for kind in ("tickets", "groups", "tags")}
    advanced = form.get("advanced", "").strip()
    if advanced:
        try:
            extra = json.loads(advanced)
        except json.JSONDecodeError as exc:
            raise ContractImportError(f"contracts[0].retainer: the advanced part is not JSON ({exc})") from None
        if not isinstance(extra, dict) or set(extra) - ADVANCED_KEYS:
            raise ContractImportError("contracts[0].retainer: the advanced part takes "
                                      + ", ".join(sorted(ADVANCED_KEYS)))
        item.update(extra)
    return item


def _form_of(data: dict[str, Any]) -> dict[str, str]:
    """A stored contract (import format) as the form's values."""
    form = {k: str(data.get(k) or "") for k in ("code", "customer", "kind", "trigger", "valid_from", "valid_until",
                                                "timezone", "holiday_region", "surcharge_policy")}
    for key, value in (data.get("rounding") or {}).items():
        if key != "minimum_by_activity":
            form[f"rounding_{key}"] = str(value)
    for i, s in enumerate(data.get("surcharges") or []):
        form.update({f"surcharges-{i}-{k}": str(v) for k, v in s.items()})
    for i, r in enumerate(data.get("rates") or []):
        form.update({f"rates-{i}-{k}": str(v) for k, v in r.items() if v is not None})
    for kind, values in (data.get("assign") or {}).items():
        form[f"assign_{kind}"] = ", ".join(values)
    advanced = {k: data[k] for k in sorted(ADVANCED_KEYS) if data.get(k)}
    form["advanced"] = json.dumps(advanced, indent=2, ensure_ascii=False) if advanced else ""
    return form


@bp.get("/contracts")
@requires("config")
def contracts() -> ResponseReturnValue:
    """Every contract with its customer, kind, trigger and validity."""
    with reading() as db:
        rows = db.execute(select(Contract).order_by(Contract.code)).scalars().all()
        return render_template("web/admin/contracts.html", rows=rows)


def _contract_page(db, code: str | None, values: dict[str, str], errors: dict[str, str],  # type: ignore[no-untyped-def]
                   preview: list[Any] | None = None, status: int = 200, changed: Any = None) -> ResponseReturnValue:
    row = db.execute(select(Contract).where(Contract.code == code)).scalar_one_or_none() if code else None
    customers = db.execute(select(Customer).where(Customer.helpdesk == settings().helpdesk_kind)
                           .order_by(Customer.name)).scalars().all()
    covered = covered_tickets(db, settings(), row, recent(now())) if row is not None else []
    return render_template("web/admin/contract.html", row=row, values=values, errors=errors,
                           customer_options=[(c.remote_id, c.name) for c in customers],
                           covered=covered, preview=preview, changed=changed, surcharge_rows=SURCHARGE_ROWS,
                           rate_rows=RATE_ROWS), status


@bp.route("/contracts/new", methods=["GET", "POST"], defaults={"code": None})
@bp.route("/contracts/<code>", methods=["GET", "POST"])
@requires("config")
def contract(code: str | None) -> ResponseReturnValue:
    """Edit or create a contract: validate, preview what it would bill, then save."""
    helpdesk = settings().helpdesk_kind
    if request.method == "GET":
        with reading() as db:
            row = db.execute(select(Contract).where(Contract.code == code)).scalar_one_or_none() if code else None
            if code and row is None:
                abort(404)
            values = _form_of(contract_json(db, row)) if row else {"kind": "time_and_material",
                                                                   "trigger": "per_ticket"}
            return _contract_page(db, code, values, {})
    values = request.form.to_dict()
    action = values.pop("action", "preview")
    apply_raw = values.pop("apply_from", "").strip()
    try:
        apply_from = date.fromisoformat(apply_raw) if apply_raw else None
    except ValueError:
        with reading() as db:
            return _contract_page(db, code, {**values, "apply_from": apply_raw},
                                  {"apply_from": _("Enter a day such as 2026-11-01.")}, status=422)
    values_shown = {**values, "apply_from": apply_raw}
    try:
        document = {"contracts": [contract_document(values)]}
    except ContractImportError as exc:
        with reading() as db:
            return _contract_page(db, code, values, {_field_of(str(exc)) or "code": str(exc)}, status=422)
    with reading() as db:  # a preview never commits: its savepoint is rolled back, the session closed
        customer = db.execute(select(Customer).where(Customer.helpdesk == helpdesk, Customer.remote_id
                                                     == values.get("customer", ""))).scalar_one_or_none()
        try:
            rows = preview_contract(db, settings(), helpdesk, document, customer, now(),
                                    apply_from) if customer else None
            if customer is None:
                import_document(db, helpdesk, document)  # raises the field error for the customer
            changed = preview_import(db, settings(), helpdesk, document, apply_from)
        except ContractImportError as exc:
            db.rollback()
            return _contract_page(db, code, values_shown, {_field_of(str(exc)) or "code": str(exc)}, status=422)
        if action != "save":
            return _contract_page(db, code, values_shown, {}, preview=rows, changed=changed)
    with writing() as db:
        import_document(db, helpdesk, document, apply_from=apply_from)
    flash(_("Contract %(code)s saved; it applies from the next run.", code=values.get("code")), "ok")
    return redirect(url_for("admin.contract", code=values.get("code")))


# --- shared rates and catalogue ---------------------------------------------------------------

@bp.route("/rates", methods=["GET", "POST"])
@requires("config")
def rates() -> ResponseReturnValue:
    """Global and customer rate rules (contract rates are on the contract) and the default rate."""
    errors: dict[str, str] = {}
    with writing() as db:
        if request.method == "POST":
            rules = []
            for i in range(int(request.form.get("rows", "0") or 0)):
                row = {k: request.form.get(f"rates-{i}-{k}", "").strip()
                       for k in ("scope", "customer", "activity", "agent", "role", "rate")}
                if row["rate"] or row["activity"] or row["agent"] or row["role"] or row["customer"]:
                    rules.append({k: v for k, v in row.items() if v})
            savepoint = db.begin_nested()
            try:
                import_document(db, settings().helpdesk_kind, {"rates": rules})
                savepoint.commit()
                flash(_("Rates saved; they apply from the next run."), "ok")
                return redirect(url_for("admin.rates"))
            except ContractImportError as exc:
                savepoint.rollback()
                errors[_field_of(str(exc).replace("rates[", "x[0].rates[", 1)) or "rates"] = str(exc)
        document = export_document(db)
        default = db.get(GlobalRate, "")
        customers = db.execute(select(Customer).order_by(Customer.name)).scalars().all()
        return render_template("web/admin/rates.html", rules=document["rates"], errors=errors, default=default,
                               customers=customers), 422 if errors else 200


@bp.route("/catalogue", methods=["GET", "POST"])
@requires("config")
def catalogue() -> ResponseReturnValue:
    """Activity types (billable or internal) and agents with the role that selects role rates."""
    with writing() as db:
        if request.method == "POST":
            kind = request.form.get("kind")
            if kind == "activity":
                name = request.form.get("name", "").strip()
                if not name:
                    flash(_("Enter the activity type as the helpdesk names it."), "error")
                else:
                    row = db.get(ActivityType, name) or ActivityType(name=name)
                    row.internal = request.form.get("internal") == "on"
                    db.add(row)
                    flash(_("Activity type %(name)s saved.", name=name), "ok")
            elif kind == "agent":
                agent, role = request.form.get("agent", "").strip(), request.form.get("role", "").strip() or None
                if not agent:
                    flash(_("Enter the agent's login as the time entries name it."), "error")
                else:
                    row = db.get(AgentRole, agent) or AgentRole(id=agent)
                    row.role = role
                    db.add(row)
                    flash(_("Agent %(agent)s saved.", agent=agent), "ok")
            return redirect(url_for("admin.catalogue"))
        activities = db.execute(select(ActivityType).order_by(ActivityType.name)).scalars().all()
        agents = db.execute(select(AgentRole).order_by(AgentRole.id)).scalars().all()
        return render_template("web/admin/catalogue.html", activities=activities, agents=agents)


# --- number series ----------------------------------------------------------------------------

@bp.route("/series", methods=["GET", "POST"])
@requires("config")
def series() -> ResponseReturnValue:
    """The number series (patterns from the settings, counters per year). A counter can only be
    set for a year in which the series has issued nothing yet (taking over from an old system):
    issued numbers stay gapless and are never renumbered."""
    with writing() as db:
        if request.method == "POST":
            name, year_raw, start_raw = (request.form.get(k, "").strip() for k in ("series", "year", "start"))
            if name not in ("invoice", "cancellation") or not year_raw.isdigit() or not start_raw.isdigit() \
                    or int(start_raw) < 1:
                flash(_("Choose the series, the year and a first number of at least 1."), "error")
            else:
                row = db.get(NumberSeries, (name, int(year_raw)))
                if row is not None and row.next_value > 1:
                    flash(_("Series %(name)s has issued numbers in %(year)s already; it cannot be changed.",
                            name=name, year=year_raw), "error")
                else:
                    row = row or NumberSeries(name=name, year=int(year_raw))
                    row.next_value = int(start_raw)
                    db.add(row)
                    flash(_("Series %(name)s starts %(year)s at %(start)s.", name=name, year=year_raw,
                            start=start_raw), "ok")
            return redirect(url_for("admin.series"))
        rows = db.execute(select(NumberSeries).order_by(NumberSeries.name, NumberSeries.year.desc())).scalars().all()
        issued = dict(db.execute(select(Invoice.series, func.count()).where(Invoice.number.is_not(None))
                                 .group_by(Invoice.series)).all())
        return render_template("web/admin/series.html", rows=rows, issued=issued, this_year=date.today().year,
                               patterns={"invoice": settings().invoice_number_pattern,
                                         "cancellation": settings().cancellation_number_pattern})


# --- users and tokens -------------------------------------------------------------------------

@bp.route("/users", methods=["GET", "POST"])
@requires("config")
def users() -> ResponseReturnValue:
    """Accounts and their roles; new local accounts; API tokens (shown once)."""
    new_token = None
    errors: dict[str, str] = {}
    with writing() as db:
        if request.method == "POST":
            action = request.form.get("action")
            savepoint = db.begin_nested()
            try:
                if action == "create":
                    create_user(db, request.form.get("login", ""), request.form.get("name", ""),
                                request.form.get("role", ""), request.form.get("password", ""), now())
                    flash(_("User created."), "ok")
                elif action == "update":
                    user = db.get(AppUser, int(request.form.get("user_id", "0") or 0))
                    if user is None:
                        abort(404)
                    update_user(db, user, role=request.form.get("role"), active=request.form.get("active") == "on",
                                password=request.form.get("password") or None)
                    flash(_("User %(login)s saved.", login=user.login), "ok")
                elif action == "token":
                    user = db.get(AppUser, int(request.form.get("user_id", "0") or 0))
                    if user is None:
                        abort(404)
                    new_token, _row = issue_token(db, user, request.form.get("name", ""), now())
                elif action == "revoke":
                    revoke_token(db, int(request.form.get("token_id", "0") or 0), now())
                    flash(_("Token revoked."), "ok")
                savepoint.commit()
            except UserError as exc:
                savepoint.rollback()
                errors[exc.field] = str(exc)
        rows = db.execute(select(AppUser).order_by(AppUser.login)).scalars().all()
        tokens = db.execute(select(ApiToken).order_by(ApiToken.id.desc())).scalars().all()
        return render_template("web/admin/users.html", rows=rows, tokens=tokens, roles=ROLES, errors=errors,
                               new_token=new_token, form=request.form if errors else {}), 422 if errors else 200

