"""The memoised surcharge calendar cuts and prices exactly like cutting each entry afresh.

`reference_split` below is the split as it was before the per-day memo: the local days from the
day before the start to the day after the end, every boundary time combined on each day, and
`surcharge_at` evaluated at every cut. The calendar must give the same segments (instants,
minutes, percentages, window names), also when one calendar serves many intervals, on DST switch
days (gaps and folds, half-hour shifts, a zone that skipped a whole day) and for window edges
inside the hour that a switch skips or repeats.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from addon.billing import Contract, Surcharge
from addon.billing.surcharges import Segment, _Calendar, apply_delta, split_interval, surcharge_at

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Pacific/Apia",
         "Asia/Kolkata", "UTC")


def reference_split(start: datetime, end: datetime, contract: Contract) -> tuple[Segment, ...]:
    """The cut-per-entry algorithm the calendar replaces (kept here as the specification)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    zone = ZoneInfo(contract.timezone)
    times = {time(0, 0)}
    for window in contract.surcharges:
        times.update(t for t in (window.start, window.end) if t is not None)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    cuts = {start, end}
    while day <= last:
        for moment in times:
            instant = datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)
            if start < instant < end:
                cuts.add(instant)
        day += timedelta(days=1)
    merged: list[Segment] = []
    for left, right in pairwise(sorted(cuts)):
        percent, names = surcharge_at(left, contract)
        minutes = int((right - left).total_seconds() // 60)
        if merged and merged[-1].percent == percent and merged[-1].windows == names:
            prev = merged[-1]
            merged[-1] = Segment(prev.start, right, prev.minutes + minutes, percent, names)
        else:
            merged.append(Segment(left, right, minutes, percent, names))
    return tuple(merged)


def shape(segments: tuple[Segment, ...]) -> list[tuple[datetime, datetime, int, str, tuple[str, ...]]]:
    return [(s.start, s.end, s.minutes, str(s.percent), s.windows) for s in segments]  # str: "25.0" stays


NIGHT = Surcharge("Nacht", "night", Decimal("25"), time(20), time(6))
EARLY = Surcharge("Früh", "night", Decimal("10"), time(2, 30), time(3, 15))  # inside a skipped/repeated hour
SAT = Surcharge("Samstag", "saturday", Decimal("50"))
SUN = Surcharge("Sonntag", "sunday", Decimal("50"), time(1), time(23, 59, 30))
HOL = Surcharge("Feiertag", "holiday", Decimal("100"))
BROKEN = Surcharge("kaputt", "night", Decimal("5"), time(4))  # night without an end: never applies


def berlin(contract_windows: tuple[Surcharge, ...], policy: str = "highest") -> Contract:
    return Contract(timezone="Europe/Berlin", holiday_region="DE-BY", surcharges=contract_windows,
                    surcharge_policy=policy)  # type: ignore[arg-type]


def test_dst_switch_days_in_berlin() -> None:
    zone = ZoneInfo("Europe/Berlin")
    for policy in ("highest", "additive"):
        contract = berlin((NIGHT, EARLY, SAT, SUN, HOL, BROKEN), policy)
        calendar = _Calendar(contract)
        for day in (date(2026, 3, 28), date(2026, 3, 29), date(2026, 10, 24), date(2026, 10, 25)):
            for hour in range(24):
                for minutes in (1, 45, 90, 240, 600, 24 * 60):
                    start = datetime.combine(day, time(hour, 15), tzinfo=zone).astimezone(UTC)
                    end = start + timedelta(minutes=minutes)
                    expected = shape(reference_split(start, end, contract))
                    assert shape(split_interval(start, end, contract)) == expected
                    assert shape(split_interval(start, end, contract, calendar)) == expected


def test_fall_back_night_is_paid_twice_with_a_shared_calendar() -> None:
    contract = berlin((NIGHT, SAT, Surcharge("Sonntag", "sunday", Decimal("100"))))
    calendar = _Calendar(contract)
    start = datetime.fromisoformat("2026-10-24T19:30:00+02:00")
    end = datetime.fromisoformat("2026-10-25T03:30:00+01:00")
    for _ in range(2):  # the second call is served from the memo
        segments = split_interval(start, end, contract, calendar)
        assert [(s.minutes, s.percent, s.windows) for s in segments] == [
            (270, Decimal("50"), ("Samstag",)), (270, Decimal("100"), ("Sonntag",))]  # 02:00-03:00 twice
        assert shape(segments) == shape(reference_split(start, end, contract))


def test_empty_and_reversed_intervals_as_before() -> None:
    contract = berlin((NIGHT, SAT))
    moment = datetime(2026, 5, 5, 19, tzinfo=UTC)
    assert split_interval(moment, moment, contract) == reference_split(moment, moment, contract) == ()
    later = moment + timedelta(hours=3)
    assert shape(split_interval(later, moment, contract)) == shape(reference_split(later, moment, contract))


def test_state_at_equals_surcharge_at_around_the_clock() -> None:
    contract = berlin((NIGHT, EARLY, SAT, SUN, HOL, BROKEN), "additive")
    calendar = _Calendar(contract)
    moment = datetime(2026, 10, 23, 22, 0, 30, tzinfo=UTC)
    for _ in range(4 * 24 * 12):
        assert calendar.state_at(moment) == surcharge_at(moment, contract)
        moment += timedelta(minutes=5)


times_of_day = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]), st.sampled_from([0, 0, 30]))


@st.composite
def windows(draw: st.DrawFn) -> tuple[Surcharge, ...]:
    out: list[Surcharge] = []
    for index in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["night", "saturday", "sunday", "holiday"]))
        timed = kind == "night" or draw(st.booleans())
        start = draw(times_of_day) if timed else None
        end = draw(times_of_day) if timed and draw(st.integers(0, 9)) else None
        # equal names: a merged piece keeps the last part's percent text ("25" or "25.0")
        name = draw(st.sampled_from([f"w{index}", "same"]))
        out.append(Surcharge(name, kind, Decimal(draw(st.sampled_from(["10", "25", "25.0", "50", "100"]))),
                             start, end))
    return tuple(out)


# Instants near the DST switches of the zones above (and some plain days), as UTC.
SWITCHES = (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
            datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
            datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 15, tzinfo=UTC),
            datetime(2026, 4, 5, 3, tzinfo=UTC), datetime(2026, 9, 6, 4, tzinfo=UTC),
            datetime(2011, 12, 30, 10, tzinfo=UTC), datetime(2026, 1, 6, 12, tzinfo=UTC),
            datetime(2026, 6, 17, 12, tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), region=st.sampled_from([None, "DE-BY", "US-NY", "XX-YY"]),
       policy=st.sampled_from(["highest", "additive"]), chosen=windows(),
       intervals=st.lists(st.tuples(st.sampled_from(SWITCHES), st.integers(-36 * 60, 36 * 60),
                                    st.integers(-5, 24 * 60 + 5)), min_size=1, max_size=8))
def test_calendar_equals_cutting_afresh(zone: str, region: str | None, policy: str,
                                        chosen: tuple[Surcharge, ...],
                                        intervals: list[tuple[datetime, int, int]]) -> None:
    contract = Contract(timezone=zone, holiday_region=region, surcharges=chosen,
                        surcharge_policy=policy)  # type: ignore[arg-type]
    calendar = _Calendar(contract)
    for anchor, offset, minutes in intervals:
        start = anchor + timedelta(minutes=offset)
        end = start + timedelta(minutes=minutes)
        expected = shape(reference_split(start, end, contract))
        if not chosen:
            continue  # no windows: one plain segment, not cut at all (split_interval's own branch)
        assert shape(split_interval(start, end, contract, calendar)) == expected
        assert calendar.state_at(start) == surcharge_at(start, contract)
        if start < end:  # the run's path: the rounding delta applied while building the segments
            for delta in (0, 7, -1, -minutes // 2, -minutes - 3):
                got = calendar.segments(start.astimezone(UTC), end.astimezone(UTC), delta)
                assert shape(got) == shape(apply_delta(reference_split(start, end, contract), delta))


def test_a_merged_piece_keeps_the_last_parts_percent() -> None:
    # Two windows of one name at 25 and 25.0 %: equal situations, so the pieces merge, and the
    # merged segment carries the later part's percentage (its text is "25.0").
    contract = berlin((Surcharge("Zuschlag", "night", Decimal("25"), time(20), time(6)),
                       Surcharge("Zuschlag", "saturday", Decimal("25.0"))))
    start = datetime.fromisoformat("2026-05-16T05:00:00+02:00")  # a Saturday
    end = start + timedelta(hours=2)
    expected = shape(reference_split(start, end, contract))
    assert expected == [(start.astimezone(UTC), end.astimezone(UTC), 120, "25.0", ("Zuschlag",))]
    assert shape(split_interval(start, end, contract)) == expected
    assert shape(_Calendar(contract).segments(start.astimezone(UTC), end.astimezone(UTC), 5)) == [
        (start.astimezone(UTC), end.astimezone(UTC), 125, "25.0", ("Zuschlag",))]
