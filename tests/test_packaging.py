"""Everything the sidecar imports at run time is a runtime dependency, not only a test extra.

Why two tests: the AST check is fast and names the offending import, but it trusts the test
venv's map of import names to distributions. The second test cannot be fooled that way: it
installs `[project].dependencies` alone into a fresh venv (cached per dependency list and
Python version, so only a change of the dependencies rebuilds it) and imports, there, every
module of `addon/` and `connectors/` plus every module any function imports lazily (saxonche
was imported inside a function, so importing the modules alone would not have caught it).
`.ci/run` backs both with the README's demo in a clone without any venv.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_ROOTS = ("addon", "connectors", "migrations")
CACHE = Path(os.environ.get("TICKETBILL_CACHE_DIR") or Path.home() / ".cache" / "ticketbill")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


def runtime_distributions() -> set[str]:
    return {_normalize(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]) for req in runtime_requirements()}


def absolute_imports(path: Path) -> set[str]:
    """Every absolute module name `path` imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Module name → the files importing it, for every import that is not stdlib or our own."""
    own = {p.name for p in ROOT.iterdir() if p.is_dir()}
    found: dict[str, set[str]] = {}
    for root in RUNTIME_ROOTS:
        for path in sorted((ROOT / root).rglob("*.py")):
            for name in absolute_imports(path):
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_runtime_import_is_a_declared_dependency() -> None:
    declared = runtime_distributions()
    providers = packages_distributions()
    undeclared = []
    for name, files in sorted(third_party_imports().items()):
        top = name.partition(".")[0]
        dists = {_normalize(d) for d in providers.get(top, [])}
        if not dists & declared:
            undeclared.append(f"{name} ({', '.join(sorted(dists)) or 'not installed'}) imported by {sorted(files)}")
    assert undeclared == [], "not in [project].dependencies:\n" + "\n".join(undeclared)


IMPORT_EVERYTHING = """
import importlib, json, sys
modules, lazy = json.loads(sys.argv[1])
failures = {}
for name in modules + lazy:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failures))
"""


def own_modules() -> list[str]:
    """Every module of addon/ and connectors/ (migrations run inside Alembic, not imported)."""
    names = []
    for root in ("addon", "connectors"):
        for path in sorted((ROOT / root).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return names


def runtime_venv() -> Path:
    """A venv with `[project].dependencies` and nothing else, built once per dependency set."""
    key = hashlib.sha256(
        json.dumps([sorted(runtime_requirements()), sys.version, sys.platform]).encode()
    ).hexdigest()[:16]
    target = CACHE / f"runtime-venv-{key}"
    if (target / "ok").is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    building = CACHE / f"runtime-venv-{key}.{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    venv.create(building, with_pip=True)
    pip = subprocess.run([building / "bin" / "python", "-m", "pip", "install", "-q", *runtime_requirements()],
                         capture_output=True, text=True, timeout=900, check=False)
    assert pip.returncode == 0, f"pip install of [project].dependencies failed:\n{pip.stderr}"
    (building / "ok").write_text("\n".join(runtime_requirements()), encoding="utf-8")
    try:
        building.rename(target)
    except OSError:  # a parallel test run finished first: use its venv
        shutil.rmtree(building, ignore_errors=True)
    return target


def test_every_module_imports_in_a_venv_without_extras() -> None:
    """The first run builds the venv (about 30 s); later runs reuse it."""
    python = runtime_venv() / "bin" / "python"
    lazy = sorted(third_party_imports())
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [python, "-s", "-c", IMPORT_EVERYTHING, json.dumps([own_modules(), lazy])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {}
