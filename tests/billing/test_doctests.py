"""The worked examples in the engine's docstrings are executed, so they cannot drift."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import addon.billing as billing

MODULES = sorted(m.name for m in pkgutil.iter_modules(billing.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"addon.billing.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_package_examples() -> None:
    assert doctest.testmod(billing).failed == 0
