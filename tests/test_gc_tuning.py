"""The collector pause around the rating core restores what it found, whatever happens inside."""

from __future__ import annotations

import gc

import pytest

from addon import gc_tuning


def test_paused_stops_collections_and_resumes_them() -> None:
    assert gc.isenabled()
    with gc_tuning.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_paused_resumes_after_an_exception() -> None:
    with pytest.raises(ZeroDivisionError), gc_tuning.paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with gc_tuning.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_collection_after_the_pause_frees_a_cycle_made_during_it() -> None:
    class Node:
        pass

    gc.collect()
    with gc_tuning.paused():
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        del node
    assert gc.collect() >= 1
