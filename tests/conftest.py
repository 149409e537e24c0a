"""Shared fixtures: every test runs under pytest-trio; waits use the autojump clock."""

from __future__ import annotations

import pytest

from trio_primitives import WorkflowContext


@pytest.fixture
def ctx() -> WorkflowContext:
    """A fresh context per test."""
    return WorkflowContext(workflow_id="test")
