"""The engine is a pure package: it imports without flask, sqlalchemy, requests or network/DB
modules, and never reads the clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "addon" / "billing"

BLOCKED = ("flask", "sqlalchemy", "requests", "urllib3", "httpx", "sqlite3", "psycopg", "apscheduler")

# addon/__init__.py builds the Flask app, so the package is loaded on its own under another name.
PROBE = f"""
import importlib.util, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None
spec = importlib.util.spec_from_file_location(
    "billing_alone", {str(PACKAGE / "__init__.py")!r}, submodule_search_locations=[{str(PACKAGE)!r}])
module = importlib.util.module_from_spec(spec)
sys.modules["billing_alone"] = module
spec.loader.exec_module(module)
from decimal import Decimal
from datetime import datetime, timezone
contract = module.time_and_material(global_rate=Decimal("90.00"))
entry = module.TimeEntry("e1", "T1", "anna", "remote", start=datetime(2026, 5, 4, 9, tzinfo=timezone.utc), minutes=20)
result = module.bill_ticket(contract, {{"anna": module.Agent("anna")}}, "T1", [entry])
assert result.totals.net == Decimal("45.00"), result.totals
leaked = sorted(n for n in sys.modules if n.split(".")[0] in {BLOCKED!r} and sys.modules[n] is not None)
assert not leaked, leaked
print("pure")
"""


def test_imports_and_runs_with_io_libraries_blocked() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pure"


def test_no_clock_and_only_relative_or_pure_imports() -> None:
    allowed_roots = {"__future__", "collections", "dataclasses", "datetime", "decimal", "typing", "zoneinfo",
                     "functools", "itertools", "calendar", "holidays"}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
                assert roots <= allowed_roots, f"{path.name}: import {roots}"
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in allowed_roots, f"{path.name}: from {node.module}"
            elif isinstance(node, ast.Attribute):
                assert node.attr not in {"now", "today", "utcnow", "time_ns"}, f"{path.name} reads the clock"
