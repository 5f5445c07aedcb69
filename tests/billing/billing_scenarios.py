"""Maps the shared golden scenario files (../shared/scenarios/*.json) onto the engine's types and
replays their runs. Strict: a key the format does not define is an error, so a typo never
silently turns a knob off."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from addon.billing import (
    Agent,
    BillingRequest,
    BillingResult,
    BillingState,
    Contract,
    Extra,
    PrepaidBlock,
    RateRule,
    Retainer,
    Rollover,
    Rounding,
    Surcharge,
    TimeEntry,
    TravelFlat,
    bill,
    cancel,
)

SCENARIO_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "scenarios"

TOP_KEYS = {"id", "title", "description", "timezone", "holiday_region", "vat_rate", "agents", "rules", "entries",
            "extras", "runs"}
TOP_REQUIRED = {"id", "title", "description", "holiday_region", "vat_rate", "agents", "rules", "entries", "runs"}
RULE_KEYS = {"contract", "contract_start", "period", "fee", "fee_label", "included_minutes", "covered_activities",
             "overage_rate", "rollover", "prepaid_blocks", "rounding", "rates", "surcharges", "surcharge_policy",
             "travel", "materials"}
ENTRY_KEYS = {"id", "ticket", "agent", "activity", "start", "end", "minutes", "booked_at", "internal", "no_charge",
              "rate_override"}
EXTRA_KEYS = {"kind", "ticket", "date", "description", "quantity", "cost", "category", "markup"}
RUN_KEYS = {
    "invoice": {"action", "period", "as_of", "expect"},
    "cancel": {"action", "invoice", "as_of", "expect"},
    "update_entry": {"action", "id", "changes"},
    "book": {"action", "entry"},
}
EXPECT_KEYS = {"net", "vat", "gross", "lines", "contingent", "review_flags", "excluded_entries"}


class ScenarioError(ValueError):
    """The scenario file does not follow the format of shared/scenarios/README.md."""


def _check_keys(where: str, data: dict[str, Any], allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    missing = set(required) - set(data)
    if missing:
        raise ScenarioError(f"{where}: missing keys {sorted(missing)}")


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ScenarioError(f"timestamp without offset: {text}")
    return value


def _clock(text: str | None) -> time | None:
    return None if text is None else time.fromisoformat(text)


def parse_entry(data: dict[str, Any]) -> TimeEntry:
    _check_keys(f"entry {data.get('id')}", data, ENTRY_KEYS, {"id", "ticket", "agent", "activity"})
    return TimeEntry(
        id=data["id"], ticket=data["ticket"], agent=data["agent"], activity=data["activity"],
        start=_instant(data.get("start")), end=_instant(data.get("end")), minutes=data.get("minutes"),
        booked_at=_instant(data.get("booked_at")), internal=data.get("internal", False),
        no_charge=data.get("no_charge", False),
        rate_override=Decimal(data["rate_override"]) if "rate_override" in data else None,
    )


def parse_contract(doc: dict[str, Any]) -> Contract:
    rules = doc["rules"]
    _check_keys("rules", rules, RULE_KEYS, {"contract"})
    kind = rules["contract"]
    if kind not in ("time_and_material", "retainer"):
        raise ScenarioError(f"unknown contract {kind!r}")
    rounding_data = rules.get("rounding", {})
    _check_keys("rounding", rounding_data, {"scope", "mode", "increment", "minimum", "minimum_by_activity"})
    rounding = Rounding(**rounding_data)
    rates = []
    for rule in rules.get("rates", []):
        _check_keys("rate", rule, {"rate", "scope", "activity", "agent", "role"}, {"rate", "scope"})
        rates.append(RateRule(Decimal(rule["rate"]), rule["scope"], rule.get("activity"), rule.get("agent"),
                              rule.get("role")))
    surcharges = []
    for item in rules.get("surcharges", []):
        _check_keys("surcharge", item, {"name", "kind", "from", "to", "percent"}, {"name", "kind", "percent"})
        surcharges.append(Surcharge(item["name"], item["kind"], Decimal(item["percent"]), _clock(item.get("from")),
                                    _clock(item.get("to"))))
    retainer = None
    if kind == "retainer":
        if rules.get("period", "month") != "month":
            raise ScenarioError("only monthly retainer periods exist")
        rollover = None
        if "rollover" in rules:
            _check_keys("rollover", rules["rollover"], {"max_minutes", "periods"}, {"max_minutes", "periods"})
            rollover = Rollover(rules["rollover"]["max_minutes"], rules["rollover"]["periods"])
        blocks = []
        for block in rules.get("prepaid_blocks", []):
            _check_keys("prepaid block", block, {"id", "minutes", "valid_until", "price"}, {"id", "minutes",
                                                                                           "valid_until"})
            blocks.append(PrepaidBlock(block["id"], block["minutes"], date.fromisoformat(block["valid_until"]),
                                       Decimal(block["price"]) if "price" in block else None))
        covered = rules.get("covered_activities")
        retainer = Retainer(
            start_period=rules["contract_start"], fee=Decimal(rules["fee"]), fee_label=rules["fee_label"],
            included_minutes=rules["included_minutes"],
            covered_activities=frozenset(covered) if covered is not None else None,
            overage_rate=Decimal(rules["overage_rate"]) if "overage_rate" in rules else None,
            rollover=rollover, prepaid_blocks=tuple(blocks),
        )
    else:
        retainer_only = {"contract_start", "period", "fee", "fee_label", "included_minutes", "covered_activities",
                         "overage_rate", "rollover", "prepaid_blocks"} & set(rules)
        if retainer_only:
            raise ScenarioError(f"retainer keys in a time_and_material contract: {sorted(retainer_only)}")
    travel = None
    if "travel" in rules:
        _check_keys("travel", rules["travel"], {"flat_per_visit", "activities"}, {"flat_per_visit", "activities"})
        travel = TravelFlat(Decimal(rules["travel"]["flat_per_visit"]), frozenset(rules["travel"]["activities"]))
    markup: dict[str, Decimal] = {}
    if "materials" in rules:
        _check_keys("materials", rules["materials"], {"markup"})
        markup = {k: Decimal(v) for k, v in rules["materials"].get("markup", {}).items()}
    return Contract(
        id=doc["id"], timezone=doc.get("timezone", "Europe/Berlin"), holiday_region=doc["holiday_region"],
        vat_rate=Decimal(doc["vat_rate"]), rounding=rounding, rates=tuple(rates), surcharges=tuple(surcharges),
        surcharge_policy=rules.get("surcharge_policy", "highest"), retainer=retainer, travel=travel,
        material_markup=markup,
    )


def parse_extra(index: int, data: dict[str, Any]) -> Extra:
    _check_keys(f"extra {index}", data, EXTRA_KEYS, {"kind", "ticket", "date", "description", "quantity", "cost"})
    return Extra(
        id=f"x{index}", kind=data["kind"], ticket=data["ticket"], date=date.fromisoformat(data["date"]),
        description=data["description"], quantity=Decimal(data["quantity"]), cost=Decimal(data["cost"]),
        category=data.get("category"), markup=Decimal(data["markup"]) if "markup" in data else None,
    )


@dataclass
class Replay:
    """The mutable test-side world: what the helpdesk reports now, and the engine's state."""

    contract: Contract
    agents: dict[str, Agent]
    entries: dict[str, TimeEntry]
    extras: tuple[Extra, ...]
    state: BillingState = field(default_factory=BillingState)
    documents: list[str] = field(default_factory=list)


def load(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    _check_keys(path.name, doc, TOP_KEYS, TOP_REQUIRED)
    for agent_id, agent in doc["agents"].items():
        _check_keys(f"agent {agent_id}", agent, {"role"})
    for index, run in enumerate(doc["runs"]):
        action = run.get("action")
        if action not in RUN_KEYS:
            raise ScenarioError(f"run {index}: unknown action {action!r}")
        _check_keys(f"run {index}", run, RUN_KEYS[action], RUN_KEYS[action] - {"as_of"})
        if "expect" in run:
            _check_keys(f"run {index} expect", run["expect"], EXPECT_KEYS, {"net", "vat", "gross", "lines"})
    return doc


def start(doc: dict[str, Any]) -> Replay:
    entries = [parse_entry(e) for e in doc["entries"]]
    return Replay(
        contract=parse_contract(doc),
        agents={k: Agent(k, v.get("role")) for k, v in doc["agents"].items()},
        entries={e.id: e for e in entries},
        extras=tuple(parse_extra(i, x) for i, x in enumerate(doc.get("extras", []))),
    )


def apply_run(replay: Replay, index: int, run: dict[str, Any]) -> BillingResult | None:
    """Execute one run; returns the document for invoice/cancel runs."""
    action = run["action"]
    document_id = f"run-{index}"
    if action == "book":
        entry = parse_entry(run["entry"])
        replay.entries[entry.id] = entry
        replay.documents.append(document_id)
        return None
    if action == "update_entry":
        current = replay.entries[run["id"]]
        changes = dict(run["changes"])
        _check_keys(f"run {index} changes", changes, ENTRY_KEYS - {"id"})
        merged = {**{k: v for k, v in _entry_as_json(current).items() if v is not None}, **changes}
        replay.entries[current.id] = parse_entry(merged)
        replay.documents.append(document_id)
        return None
    if action == "invoice":
        result = bill(BillingRequest(
            contract=replay.contract, agents=replay.agents, entries=tuple(replay.entries.values()),
            extras=replay.extras, period=run["period"], state=replay.state, document_id=document_id))
    else:
        result = cancel(replay.state, f"run-{run['invoice']}", document_id)
    replay.state = result.state
    replay.documents.append(document_id)
    return result


def _entry_as_json(entry: TimeEntry) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()
    return {
        "id": entry.id, "ticket": entry.ticket, "agent": entry.agent, "activity": entry.activity,
        "start": stamp(entry.start), "end": stamp(entry.end), "minutes": entry.minutes,
        "booked_at": stamp(entry.booked_at), "internal": entry.internal or None, "no_charge": entry.no_charge or None,
        "rate_override": None if entry.rate_override is None else str(entry.rate_override),
    }


def money(value: Decimal) -> str:
    """Format as the scenario files do: exactly 2 decimals."""
    return f"{value.quantize(Decimal('0.01')):f}"


def observed(result: BillingResult, expect: dict[str, Any], period: str | None) -> dict[str, Any]:
    """The result in the shape of `expect` (only the keys the scenario checks)."""
    out: dict[str, Any] = {
        "net": money(result.totals.net), "vat": money(result.totals.vat), "gross": money(result.totals.gross),
        "lines": sorted([f"{line.quantity.quantize(Decimal('0.0001')):f}", money(line.unit_price)
                         if line.unit_price == line.unit_price.quantize(Decimal("0.01"))
                         else f"{line.unit_price:f}", money(line.net)] for line in result.lines),
    }
    if "contingent" in expect:
        snap = result.contingent(period) if period else None
        out["contingent"] = None if snap is None else {
            "consumed": dict(snap.consumed), "remaining": dict(snap.remaining), "overage": snap.overage,
            "rollover_out": snap.rollover_out}
    if "review_flags" in expect:
        out["review_flags"] = sorted(
            ({"flag": p.code, "ticket": p.ticket, "minutes": p.minutes} for p in result.problems),
            key=lambda f: json.dumps(f, sort_keys=True))
    if "excluded_entries" in expect:
        out["excluded_entries"] = sorted({x.entry_id for x in result.excluded})
    return out


def expected(expect: dict[str, Any]) -> dict[str, Any]:
    """`expect` normalised for comparison (multisets sorted, sets deduplicated)."""
    out = dict(expect)
    out["lines"] = sorted([q, _norm_price(p), n] for q, p, n in expect["lines"])
    if "review_flags" in out:
        out["review_flags"] = sorted(out["review_flags"], key=lambda f: json.dumps(f, sort_keys=True))
    if "excluded_entries" in out:
        out["excluded_entries"] = sorted(set(out["excluded_entries"]))
    return out


def _norm_price(text: str) -> str:
    value = Decimal(text)
    return money(value) if value == value.quantize(Decimal("0.01")) else f"{value:f}"


__all__ = ["SCENARIO_DIR", "Replay", "ScenarioError", "apply_run", "expected", "load", "observed", "replace",
           "start"]
