"""Shared fixtures: every test runs under pytest-trio; waits use the autojump clock."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from trio_primitives import WorkflowContext

# Property tests check behaviour, never time: no per-example deadline on a shared
# machine. Under CI (CI=true) the examples are derandomized, so a run is
# reproducible and a new counterexample is found locally, not in a landing.
settings.register_profile("default", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def ctx() -> WorkflowContext:
    """A fresh context per test."""
    return WorkflowContext(workflow_id="test")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Leave ``@pytest.mark.asyncio`` tests to pytest-asyncio.

    pytest-trio's ``trio_mode`` marks every async test ``trio``; a test that
    asks for asyncio (the asyncio bridge's tests) must run on an asyncio loop.
    """
    for item in items:
        if item.get_closest_marker("asyncio") is not None:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]
