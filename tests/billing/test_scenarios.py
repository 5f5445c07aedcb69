"""Every golden scenario in ../shared/scenarios replays to the cent (see its README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from billing_scenarios import SCENARIO_DIR, ScenarioError, apply_run, expected, load, observed, start


def _scenario_files() -> list[Path]:
    if not SCENARIO_DIR.is_dir():
        raise RuntimeError(f"scenario folder missing: {SCENARIO_DIR}")
    files = sorted(SCENARIO_DIR.glob("*.json"))
    if not files:
        raise RuntimeError(f"no scenario files in {SCENARIO_DIR}")
    return files


@pytest.mark.parametrize("path", _scenario_files(), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    doc = load(path)
    replay = start(doc)
    checked = 0
    for index, run in enumerate(doc["runs"]):
        result = apply_run(replay, index, run)
        if "expect" not in run:
            continue
        assert result is not None
        got = observed(result, run["expect"], run.get("period"))
        want = expected(run["expect"])
        assert got == want, f"{path.name} run {index} ({run['action']}): problems={result.problems}"
        checked += 1
    assert checked > 0


def test_scenario_folder_is_found() -> None:
    assert len(_scenario_files()) >= 13


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    source = _scenario_files()[0].read_text(encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(source.replace('"vat_rate"', '"vat_rates"', 1), encoding="utf-8")
    with pytest.raises(ScenarioError, match="unknown keys"):
        load(bad)
    bad.write_text(source.replace('"rules": {', '"rules": {"rounding_mode": "up", ', 1), encoding="utf-8")
    with pytest.raises(ScenarioError, match="unknown keys"):
        start(load(bad))
