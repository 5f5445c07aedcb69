"""Contracts as configuration: imported from JSON, validated as a whole, written in one transaction.

A contract says how a customer's time becomes money (see README "How billing works"). The file
names customers by the helpdesk's organization id (`customer`, as in `ticketbill customers list`);
agents by the login their time entries carry. Example (every key is optional unless marked):

    {"activities": ["Remote", "Vor-Ort"],               # known activity types (else: no check)
     "agents": [{"id": "anna.schmidt@nordlicht-it.example", "role": "senior"}],
     "rates": [{"scope": "global", "activity": "Notfall", "rate": "150.00"},
               {"scope": "customer", "customer": "2", "role": "senior", "rate": "125.00"}],
     "contracts": [{
        "code": "HANSEN-FLAT",                          # required, unique
        "customer": "1",                                # required: organization id
        "kind": "retainer",                             # time_and_material | retainer
        "trigger": "monthly",                           # per_ticket | monthly
        "valid_from": "2026-01-01", "valid_until": null,
        "timezone": "Europe/Berlin", "holiday_region": "DE-HH",
        "rounding": {"scope": "entry", "mode": "up", "increment": 15, "minimum": 15,
                     "minimum_by_activity": {"Vor-Ort": 30}},
        "surcharge_policy": "highest",                  # highest | additive
        "surcharges": [{"name": "Nacht", "kind": "night", "from": "20:00", "to": "06:00",
                        "percent": "25"}],
        "rates": [{"activity": "Remote", "rate": "95.00"}, {"role": "senior", "rate": "120.00"}],
        "retainer": {"start_period": "2026-01", "fee": "950.00", "fee_label": "Service-Flat",
                     "included_minutes": 600, "covered_activities": ["Remote"],
                     "overage_rate": "115.00", "rollover": {"max_minutes": 120, "periods": 1},
                     "prepaid_blocks": [{"id": "B1", "minutes": 600, "valid_until": "2026-12-31",
                                         "price": "900.00"}]},
        "travel": {"flat_per_visit": "35.00", "activities": ["Vor-Ort"], "km_rate": "0.50"},
        "material_markup": {"hardware": "0.15"},
        "discounts": [{"label": "Stammkundenrabatt", "percent": "5", "on": ["time"]}],
        "assign": {"tickets": ["31001"], "groups": ["Users"], "tags": ["vip"]}}]}

Importing replaces each named contract completely (by `code`) and, when the file has `rates`,
all customer and global rate rules; contracts not named in the file are left alone. Issued
invoices never change: they remember what they billed, so an edited rate shows up on the next
invoice as a correction of the earlier ones. To change terms from a date on, end the old
contract (`valid_until`) and add a new one (`valid_from`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from addon.discounts import DiscountError, validate_discounts
from addon.models import (
    ActivityType,
    AgentRole,
    Contract,
    ContractAssignment,
    Customer,
    PrepaidBlockRow,
    RateRuleRow,
    SurchargeWindow,
)

TOP_KEYS = {"activities", "agents", "rates", "contracts"}
CONTRACT_KEYS = {
    "code", "customer", "kind", "trigger", "valid_from", "valid_until", "timezone", "holiday_region",
    "rounding", "surcharge_policy", "surcharges", "rates", "retainer", "travel", "material_markup",
    "assign", "discounts",
}
ROUNDING_KEYS = {"scope", "mode", "increment", "minimum", "minimum_by_activity"}
SURCHARGE_KEYS = {"name", "kind", "from", "to", "percent"}
RATE_KEYS = {"scope", "customer", "activity", "agent", "role", "rate"}
RETAINER_KEYS = {"start_period", "fee", "fee_label", "included_minutes", "covered_activities",
                 "overage_rate", "rollover", "prepaid_blocks"}
BLOCK_KEYS = {"id", "minutes", "valid_until", "price"}
ASSIGN_KEYS = {"tickets", "groups", "tags"}
KINDS = ("time_and_material", "retainer")
TRIGGERS = ("per_ticket", "monthly")


class ContractImportError(ValueError):
    """The file is not a valid contract import; the message names the entry and key."""


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    agents: int
    rates: int


def _obj(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractImportError(f"{where}: expected an object")
    unknown = set(value) - allowed
    if unknown:
        raise ContractImportError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return value


def _text(value: Any, where: str, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ContractImportError(f"{where}: missing")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ContractImportError(f"{where}: expected a string")
    return str(value).strip()


def _decimal(value: Any, where: str, *, places: int = 2, positive: bool = True) -> Decimal:
    """Money and percentages as strings ("95.00"); floats would carry binary noise."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ContractImportError(f"{where}: {value!r} is not an amount such as \"95.00\" (use a string)")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ContractImportError(f"{where}: {value!r} is not an amount such as \"95.00\"") from None
    if not amount.is_finite() or (amount < 0 if not positive else amount <= 0):
        raise ContractImportError(f"{where}: {value!r} must be {'positive' if positive else 'zero or more'}")
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ContractImportError(f"{where}: {value!r} has more than {places} decimals")
    return amount


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ContractImportError(f"{where}: {value!r} must be a whole number ≥ {minimum}")
    return value


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ContractImportError(f"{where}: {value!r} is not a date YYYY-MM-DD") from None


def _period(value: Any, where: str) -> str:
    text = _text(value, where)
    assert text is not None
    try:
        date.fromisoformat(f"{text}-01")
    except ValueError:
        raise ContractImportError(f"{where}: {text!r} is not a period YYYY-MM") from None
    if len(text) != 7:
        raise ContractImportError(f"{where}: {text!r} is not a period YYYY-MM")
    return text


def _hhmm(value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = time.fromisoformat(str(value))
    except ValueError:
        raise ContractImportError(f"{where}: {value!r} is not a time HH:MM") from None
    return f"{parsed:%H:%M}"


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str | int) and str(v).strip() for v in value):
        raise ContractImportError(f"{where}: expected a list of names")
    return sorted({str(v).strip() for v in value})


def _choice(value: Any, where: str, choices: tuple[str, ...], default: str) -> str:
    value = default if value is None else value
    if value not in choices:
        raise ContractImportError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _rate(item: Any, where: str, *, contract_scope: bool) -> dict[str, Any]:
    data = _obj(item, where, RATE_KEYS)
    scope = "contract" if contract_scope else _choice(data.get("scope"), f"{where}.scope",
                                                      ("customer", "global"), "global")
    if contract_scope and data.get("scope", "contract") != "contract":
        raise ContractImportError(f"{where}.scope: rates inside a contract have scope contract")
    rule = {
        "scope": scope,
        "customer": _text(data.get("customer"), f"{where}.customer", required=scope == "customer"),
        "activity": _text(data.get("activity"), f"{where}.activity", required=False),
        "agent": _text(data.get("agent"), f"{where}.agent", required=False),
        "role": _text(data.get("role"), f"{where}.role", required=False),
        "rate": _decimal(data.get("rate"), f"{where}.rate"),
    }
    if scope != "customer" and rule["customer"] is not None:
        raise ContractImportError(f"{where}.customer: only rates with scope customer name a customer")
    if rule["agent"] and rule["role"]:
        raise ContractImportError(f"{where}: a rate names an agent or a role, not both")
    return rule


def _surcharge(item: Any, where: str) -> dict[str, Any]:
    data = _obj(item, where, SURCHARGE_KEYS)
    kind = _choice(data.get("kind"), f"{where}.kind", ("night", "saturday", "sunday", "holiday"), "")
    start, end = _hhmm(data.get("from"), f"{where}.from"), _hhmm(data.get("to"), f"{where}.to")
    if kind == "night" and (start is None or end is None):
        raise ContractImportError(f"{where}: a night window needs from and to")
    if (start is None) != (end is None):
        raise ContractImportError(f"{where}: give both from and to, or neither")
    return {"name": _text(data.get("name"), f"{where}.name"), "kind": kind, "start": start, "end": end,
            "percent": _decimal(data.get("percent"), f"{where}.percent")}


def _retainer(value: Any, where: str) -> dict[str, Any]:
    data = _obj(value, where, RETAINER_KEYS)
    for key in ("start_period", "fee", "fee_label", "included_minutes"):
        if data.get(key) is None:
            raise ContractImportError(f"{where}.{key}: missing")
    result: dict[str, Any] = {
        "retainer_start": _period(data["start_period"], f"{where}.start_period"),
        "fee": _decimal(data["fee"], f"{where}.fee", positive=False),
        "fee_label": _text(data["fee_label"], f"{where}.fee_label"),
        "included_minutes": _int(data["included_minutes"], f"{where}.included_minutes"),
        "covered_activities": (None if data.get("covered_activities") is None
                               else _names(data["covered_activities"], f"{where}.covered_activities")),
        "overage_rate": (None if data.get("overage_rate") is None
                         else _decimal(data["overage_rate"], f"{where}.overage_rate")),
        "rollover_max_minutes": None, "rollover_periods": None, "blocks": [],
    }
    if data.get("rollover") is not None:
        roll = _obj(data["rollover"], f"{where}.rollover", {"max_minutes", "periods"})
        result["rollover_max_minutes"] = _int(roll.get("max_minutes"), f"{where}.rollover.max_minutes")
        result["rollover_periods"] = _int(roll.get("periods"), f"{where}.rollover.periods", minimum=1)
    blocks = data.get("prepaid_blocks", [])
    if not isinstance(blocks, list):
        raise ContractImportError(f"{where}.prepaid_blocks: expected a list")
    for i, item in enumerate(blocks):
        bw = f"{where}.prepaid_blocks[{i}]"
        block = _obj(item, bw, BLOCK_KEYS)
        until = _date(block.get("valid_until"), f"{bw}.valid_until")
        if until is None:
            raise ContractImportError(f"{bw}.valid_until: missing")
        result["blocks"].append({
            "code": _text(block.get("id"), f"{bw}.id"),
            "minutes": _int(block.get("minutes"), f"{bw}.minutes", minimum=1),
            "valid_until": until,
            "price": None if block.get("price") is None else _decimal(block["price"], f"{bw}.price",
                                                                      positive=False),
        })
    if len({b["code"] for b in result["blocks"]}) != len(result["blocks"]):
        raise ContractImportError(f"{where}.prepaid_blocks: block ids must be unique")
    return result


def _contract(item: Any, index: int, customers: dict[str, Customer]) -> dict[str, Any]:
    where = f"contracts[{index}]"
    if not isinstance(item, dict):
        raise ContractImportError(f"{where}: expected an object")
    code = _text(item.get("code"), f"{where}.code")
    where = f"contracts[{index}] ({code})"
    data = _obj(item, where, CONTRACT_KEYS)
    customer = _text(data.get("customer"), f"{where}.customer")
    if customer not in customers:
        raise ContractImportError(
            f"{where}.customer: no customer with helpdesk id {customer!r}; import it first "
            "(`ticketbill customers import`)")
    kind = _choice(data.get("kind"), f"{where}.kind", KINDS, "time_and_material")
    result: dict[str, Any] = {
        "code": code, "customer": customers[str(customer)], "kind": kind,
        "trigger": _choice(data.get("trigger"), f"{where}.trigger", TRIGGERS,
                           "monthly" if kind == "retainer" else "per_ticket"),
        "valid_from": _date(data.get("valid_from"), f"{where}.valid_from"),
        "valid_until": _date(data.get("valid_until"), f"{where}.valid_until"),
        "timezone": _text(data.get("timezone"), f"{where}.timezone", required=False),
        "holiday_region": _text(data.get("holiday_region"), f"{where}.holiday_region", required=False),
        "surcharge_policy": _choice(data.get("surcharge_policy"), f"{where}.surcharge_policy",
                                    ("highest", "additive"), "highest"),
    }
    if result["valid_from"] and result["valid_until"] and result["valid_until"] < result["valid_from"]:
        raise ContractImportError(f"{where}.valid_until: before valid_from")
    if result["timezone"]:
        try:
            ZoneInfo(result["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ContractImportError(f"{where}.timezone: unknown time zone {result['timezone']!r}") from None
    if result["holiday_region"]:
        country, _, subdivision = result["holiday_region"].partition("-")
        try:
            holidays.country_holidays(country, subdiv=subdivision or None)
        except NotImplementedError:
            raise ContractImportError(
                f"{where}.holiday_region: {result['holiday_region']!r} is not a region such as DE-HE") from None
    rounding = _obj(data.get("rounding", {}), f"{where}.rounding", ROUNDING_KEYS)
    minimum_by_activity = rounding.get("minimum_by_activity", {})
    if not isinstance(minimum_by_activity, dict):
        raise ContractImportError(f"{where}.rounding.minimum_by_activity: expected an object {{activity: minutes}}")
    result.update({
        "rounding_scope": _choice(rounding.get("scope"), f"{where}.rounding.scope", ("entry", "ticket"), "entry"),
        "rounding_mode": _choice(rounding.get("mode"), f"{where}.rounding.mode", ("up", "down", "nearest"), "up"),
        "rounding_increment": _int(rounding.get("increment", 15), f"{where}.rounding.increment", minimum=1),
        "rounding_minimum": _int(rounding.get("minimum", 0), f"{where}.rounding.minimum"),
        "minimum_by_activity": {str(k): _int(v, f"{where}.rounding.minimum_by_activity.{k}")
                                for k, v in minimum_by_activity.items()},
    })
    surcharges = data.get("surcharges", [])
    if not isinstance(surcharges, list):
        raise ContractImportError(f"{where}.surcharges: expected a list")
    result["surcharges"] = [_surcharge(s, f"{where}.surcharges[{i}]") for i, s in enumerate(surcharges)]
    if any(s["kind"] == "holiday" for s in result["surcharges"]) and not result["holiday_region"]:
        raise ContractImportError(f"{where}.holiday_region: a holiday surcharge needs a region such as DE-HE")
    rates = data.get("rates", [])
    if not isinstance(rates, list):
        raise ContractImportError(f"{where}.rates: expected a list")
    result["rates"] = [_rate(r, f"{where}.rates[{i}]", contract_scope=True) for i, r in enumerate(rates)]
    if kind == "retainer":
        if data.get("retainer") is None:
            raise ContractImportError(f"{where}.retainer: missing (kind retainer needs its terms)")
        result.update(_retainer(data["retainer"], f"{where}.retainer"))
        if result["trigger"] != "monthly":
            raise ContractImportError(f"{where}.trigger: a retainer is billed per period; use monthly")
    elif data.get("retainer") is not None:
        raise ContractImportError(f"{where}.retainer: only contracts of kind retainer have retainer terms")
    travel = data.get("travel")
    result["travel_flat"], result["travel_activities"], result["travel_km_rate"] = None, [], None
    if travel is not None:
        travel = _obj(travel, f"{where}.travel", {"flat_per_visit", "activities", "km_rate"})
        if travel.get("km_rate") is not None:  # price per km of travel booked in km
            result["travel_km_rate"] = _decimal(travel["km_rate"], f"{where}.travel.km_rate")
        if travel.get("flat_per_visit") is not None or result["travel_km_rate"] is None:
            result["travel_flat"] = _decimal(travel.get("flat_per_visit"), f"{where}.travel.flat_per_visit")
            result["travel_activities"] = _names(travel.get("activities"), f"{where}.travel.activities")
    markup = data.get("material_markup", {})
    if not isinstance(markup, dict):
        raise ContractImportError(f"{where}.material_markup: expected an object {{category: fraction}}")
    result["material_markup"] = {str(k): str(_decimal(v, f"{where}.material_markup.{k}", places=4, positive=False))
                                 for k, v in markup.items()}
    try:
        result["discounts"] = validate_discounts(data.get("discounts"), f"{where}.discounts") or None
    except DiscountError as exc:
        raise ContractImportError(str(exc)) from None
    assign = _obj(data.get("assign", {}), f"{where}.assign", ASSIGN_KEYS)
    result["assign"] = [(kind_[:-1], value) for kind_ in ("tickets", "groups", "tags")
                        for value in _names(assign.get(kind_, []), f"{where}.assign.{kind_}")]
    return result


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractImportError(f"{path}: {exc}") from None
    return _obj(document, str(path), TOP_KEYS)


def import_contracts(session: Session, helpdesk: str, path: Path) -> ImportResult:
    """Validate the whole file first, then write; a bad entry writes nothing."""
    return import_document(session, helpdesk, _read(path))


def import_document(session: Session, helpdesk: str, document: dict[str, Any]) -> ImportResult:
    """The import of an already parsed document (the demo builds one in memory)."""
    _obj(document, "file", TOP_KEYS)
    customers = {c.remote_id: c for c in session.execute(
        select(Customer).where(Customer.helpdesk == helpdesk)).scalars()}
    activities = _names(document.get("activities", []), "activities")
    agents = document.get("agents", [])
    if not isinstance(agents, list):
        raise ContractImportError("agents: expected a list")
    agent_rows = []
    for i, item in enumerate(agents):
        data = _obj(item, f"agents[{i}]", {"id", "role"})
        agent_rows.append((_text(data.get("id"), f"agents[{i}].id"),
                           _text(data.get("role"), f"agents[{i}].role", required=False)))
    rates = document.get("rates")
    if rates is not None and not isinstance(rates, list):
        raise ContractImportError("rates: expected a list")
    rate_rows = [_rate(r, f"rates[{i}]", contract_scope=False) for i, r in enumerate(rates or [])]
    for i, rule in enumerate(rate_rows):
        if rule["customer"] is not None and rule["customer"] not in customers:
            raise ContractImportError(f"rates[{i}].customer: no customer with helpdesk id {rule['customer']!r}")
    items = document.get("contracts", [])
    if not isinstance(items, list):
        raise ContractImportError("contracts: expected a list")
    contracts = [_contract(item, i, customers) for i, item in enumerate(items)]
    codes = [c["code"] for c in contracts]
    if len(set(codes)) != len(codes):
        raise ContractImportError(f"contracts: duplicate code(s) {sorted({c for c in codes if codes.count(c) > 1})}")

    for name in activities:
        if session.get(ActivityType, name) is None:
            session.add(ActivityType(name=name, internal=False))
    for agent_id, role in agent_rows:
        row = session.get(AgentRole, agent_id)
        if row is None:
            session.add(AgentRole(id=agent_id, role=role))
        else:
            row.role = role
    if rates is not None:
        session.execute(delete(RateRuleRow).where(RateRuleRow.scope.in_(("customer", "global"))))
        for rule in rate_rows:
            customer = customers[rule["customer"]] if rule["customer"] else None
            session.add(RateRuleRow(scope=rule["scope"], customer_id=customer.id if customer else None,
                                    activity=rule["activity"], agent=rule["agent"], role=rule["role"],
                                    rate=rule["rate"]))
    created = updated = 0
    for data in contracts:
        row = session.execute(select(Contract).where(Contract.code == data["code"])).scalar_one_or_none()
        if row is None:
            row = Contract(code=data["code"])
            session.add(row)
            created += 1
        else:
            updated += 1
            session.execute(delete(RateRuleRow).where(RateRuleRow.contract_id == row.id))
            row.assignments.clear()  # delete the old rows before the new ones meet unique keys
            row.surcharges.clear()
            row.prepaid_blocks.clear()
            session.flush()
        _apply(row, data)
        session.flush()
        for rule in data["rates"]:
            session.add(RateRuleRow(scope="contract", contract_id=row.id, activity=rule["activity"],
                                    agent=rule["agent"], role=rule["role"], rate=rule["rate"]))
    session.flush()
    return ImportResult(created, updated, len(agent_rows), len(rate_rows))


_PLAIN = ("kind", "trigger", "valid_from", "valid_until", "timezone", "holiday_region", "surcharge_policy",
          "rounding_scope", "rounding_mode", "rounding_increment", "rounding_minimum", "minimum_by_activity",
          "travel_flat", "travel_activities", "travel_km_rate", "material_markup", "discounts")
_RETAINER = ("retainer_start", "fee", "fee_label", "included_minutes", "covered_activities", "overage_rate",
             "rollover_max_minutes", "rollover_periods")


def _apply(row: Contract, data: dict[str, Any]) -> None:
    row.customer = data["customer"]
    row.customer_id = data["customer"].id
    for key in _PLAIN:
        setattr(row, key, data[key])
    for key in _RETAINER:
        setattr(row, key, data.get(key))
    row.assignments = [ContractAssignment(kind=k, value=v) for k, v in data["assign"]]
    row.surcharges = [SurchargeWindow(name=s["name"], kind=s["kind"], percent=s["percent"], start=s["start"],
                                      end=s["end"]) for s in data["surcharges"]]
    row.prepaid_blocks = [PrepaidBlockRow(**b) for b in data.get("blocks", [])]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _rate_json(rule: RateRuleRow, customer: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"scope": rule.scope} if rule.scope != "contract" else {}
    if customer is not None:
        data["customer"] = customer
    data.update({k: getattr(rule, k) for k in ("activity", "agent", "role") if getattr(rule, k)})
    data["rate"] = _money(rule.rate)
    return data


def contract_json(session: Session, row: Contract) -> dict[str, Any]:
    """One contract in the import format (what `contracts show` prints and export writes)."""
    data: dict[str, Any] = {
        "code": row.code, "customer": row.customer.remote_id, "kind": row.kind, "trigger": row.trigger,
        "valid_from": row.valid_from.isoformat() if row.valid_from else None,
        "valid_until": row.valid_until.isoformat() if row.valid_until else None,
    }
    if row.timezone:
        data["timezone"] = row.timezone
    if row.holiday_region:
        data["holiday_region"] = row.holiday_region
    data["rounding"] = {"scope": row.rounding_scope, "mode": row.rounding_mode,
                        "increment": row.rounding_increment, "minimum": row.rounding_minimum,
                        "minimum_by_activity": dict(row.minimum_by_activity or {})}
    data["surcharge_policy"] = row.surcharge_policy
    data["surcharges"] = [{"name": s.name, "kind": s.kind, **({"from": s.start, "to": s.end} if s.start else {}),
                           "percent": format(s.percent.normalize(), "f")} for s in row.surcharges]
    rules = session.execute(select(RateRuleRow).where(RateRuleRow.contract_id == row.id)
                            .order_by(RateRuleRow.id)).scalars()
    data["rates"] = [_rate_json(r) for r in rules]
    if row.kind == "retainer":
        retainer: dict[str, Any] = {
            "start_period": row.retainer_start, "fee": _money(row.fee), "fee_label": row.fee_label,
            "included_minutes": row.included_minutes, "covered_activities": row.covered_activities,
            "overage_rate": _money(row.overage_rate),
        }
        if row.rollover_max_minutes is not None:
            retainer["rollover"] = {"max_minutes": row.rollover_max_minutes, "periods": row.rollover_periods}
        retainer["prepaid_blocks"] = [
            {"id": b.code, "minutes": b.minutes, "valid_until": b.valid_until.isoformat(), "price": _money(b.price)}
            for b in row.prepaid_blocks]
        data["retainer"] = retainer
    travel: dict[str, Any] = {}
    if row.travel_flat is not None:
        travel = {"flat_per_visit": _money(row.travel_flat), "activities": list(row.travel_activities)}
    if row.travel_km_rate is not None:
        travel["km_rate"] = _money(row.travel_km_rate)
    if travel:
        data["travel"] = travel
    if row.material_markup:
        data["material_markup"] = dict(row.material_markup)
    if row.discounts:
        data["discounts"] = list(row.discounts)
    data["assign"] = {f"{kind}s": [a.value for a in row.assignments if a.kind == kind]
                      for kind in ("ticket", "group", "tag")}
    return data


def export_document(session: Session) -> dict[str, Any]:
    """Everything `import_contracts` reads, from the database: export → edit → import round-trips."""
    agents = [{"id": a.id, **({"role": a.role} if a.role else {})}
              for a in session.execute(select(AgentRole).order_by(AgentRole.id)).scalars()]
    rates = []
    for rule in session.execute(select(RateRuleRow).where(RateRuleRow.scope != "contract")
                                .order_by(RateRuleRow.id)).scalars():
        customer = session.get(Customer, rule.customer_id).remote_id if rule.customer_id else None  # type: ignore[union-attr]
        rates.append(_rate_json(rule, customer))
    contracts = [contract_json(session, c) for c in
                 session.execute(select(Contract).order_by(Contract.code)).scalars()]
    activities = list(session.execute(select(ActivityType.name).where(ActivityType.internal.is_(False))
                                      .order_by(ActivityType.name)).scalars())
    return {"activities": activities, "agents": agents, "rates": rates, "contracts": contracts}
