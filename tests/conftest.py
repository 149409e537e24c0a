"""Shared fixtures: every test runs under pytest-trio; waits use the autojump clock."""

from __future__ import annotations

import pytest

from trio_primitives import WorkflowContext


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
