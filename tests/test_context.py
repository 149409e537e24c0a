"""WorkflowContext: fields, timing, deadlines, and child contexts."""

from __future__ import annotations

import re
import time
import typing
import uuid

import attrs
import pytest
import trio
import trio.testing

from trio_primitives import LambdaPrimitive, WorkflowContext

TTA_FIELDS = (
    "workflow_id",
    "session_id",
    "player_id",
    "metadata",
    "state",
    "correlation_id",
    "causation_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_flags",
    "tags",
    "baggage",
    "start_time",
    "checkpoints",
)


def test_constructed_with_a_workflow_id_only() -> None:
    """``WorkflowContext(workflow_id="x")`` gives every other field a default."""
    before = time.time()
    ctx = WorkflowContext(workflow_id="x")
    assert ctx.workflow_id == "x"
    assert ctx.session_id is None
    assert ctx.player_id is None
    assert ctx.metadata == {}
    assert ctx.state == {}
    assert ctx.tags == {}
    assert ctx.baggage == {}
    assert ctx.checkpoints == []
    assert ctx.causation_id is None
    assert ctx.trace_id is None
    assert ctx.span_id is None
    assert ctx.parent_span_id is None
    assert ctx.trace_flags == 1
    assert before <= ctx.start_time <= time.time()
    assert uuid.UUID(ctx.correlation_id)


def test_has_the_fields_tta_users_touch() -> None:
    """Every field of TTA.dev's context that users touch exists."""
    names = {field.name for field in attrs.fields(WorkflowContext)}
    assert set(TTA_FIELDS) <= names


def test_every_field_has_a_default() -> None:
    """``WorkflowContext()`` works too: no field is required."""
    assert WorkflowContext().workflow_id is None


def test_mutable_defaults_are_not_shared() -> None:
    """Two contexts never share their dicts, lists or correlation_id."""
    a, b = WorkflowContext(workflow_id="a"), WorkflowContext(workflow_id="b")
    a.state["k"] = 1
    a.metadata["k"] = 1
    a.checkpoint("x")
    assert b.state == {}
    assert b.metadata == {}
    assert b.checkpoints == []
    assert a.correlation_id != b.correlation_id


def test_all_fields_can_be_given() -> None:
    """Every field can be set by keyword."""
    ctx = WorkflowContext(
        workflow_id="w",
        session_id="s",
        player_id="p",
        metadata={"m": 1},
        state={"s": 2},
        trace_id="t",
        span_id="sp",
        parent_span_id="psp",
        correlation_id="c",
        causation_id="cause",
        tags={"env": "test"},
        baggage={"user": "u"},
        start_time=12.0,
    )
    assert (ctx.session_id, ctx.player_id, ctx.correlation_id) == ("s", "p", "c")
    assert ctx.state == {"s": 2}
    assert ctx.start_time == 12.0


@pytest.mark.parametrize("kwarg", ["workflowid", "worflow_id", "context", "stat"])
def test_unknown_keyword_is_a_type_error(kwarg: str) -> None:
    """A typo in a keyword raises TypeError naming it instead of being dropped."""
    with pytest.raises(TypeError, match=kwarg):
        WorkflowContext(**{kwarg: "x"})


def test_positional_arguments_are_refused() -> None:
    """Fields are keyword-only, as in TTA.dev's model."""
    with pytest.raises(TypeError):
        WorkflowContext("x")


def test_contexts_compare_by_identity() -> None:
    """Two contexts with equal fields are still two different contexts."""
    a = WorkflowContext(workflow_id="x", correlation_id="c", start_time=1.0)
    b = WorkflowContext(workflow_id="x", correlation_id="c", start_time=1.0)
    assert a != b
    assert a == a
    assert len({a, b}) == 2


def test_field_types_resolve_from_the_public_module() -> None:
    """typing.get_type_hints works on the re-exported class (cattrs, pydantic, attrs.resolve_types)."""
    hints = typing.get_type_hints(WorkflowContext)
    assert hints["workflow_id"] == str | None
    assert hints["state"] == dict[str, typing.Any]
    assert hints["checkpoints"] == list[tuple[str, float]]


def test_checkpoint_records_name_and_wall_time() -> None:
    """``checkpoint(name)`` appends (name, time.time()) in call order."""
    ctx = WorkflowContext(workflow_id="x")
    before = time.time()
    ctx.checkpoint("fetched")
    ctx.checkpoint("parsed")
    after = time.time()
    assert [name for name, _ in ctx.checkpoints] == ["fetched", "parsed"]
    assert before <= ctx.checkpoints[0][1] <= ctx.checkpoints[1][1] <= after


def test_elapsed_ms_counts_from_start_time() -> None:
    """``elapsed_ms()`` is the wall-clock milliseconds since start_time."""
    ctx = WorkflowContext(workflow_id="x", start_time=time.time() - 2.0)
    elapsed = ctx.elapsed_ms()
    assert 2000.0 <= elapsed < 2000.0 + 60_000.0
    assert WorkflowContext(workflow_id="y").elapsed_ms() >= 0.0


async def test_remaining_is_none_without_a_deadline(ctx: WorkflowContext) -> None:
    """``remaining()`` is None when no enclosing scope has a deadline."""
    assert ctx.remaining() is None


# A step reading its time budget, as user code does inside a workflow.
budget = LambdaPrimitive(lambda data, context: context.remaining())


async def test_remaining_follows_trio_deadlines(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """``remaining()`` is the time left under the nearest enclosing trio deadline."""
    with trio.move_on_after(10):
        assert await budget.execute(None, ctx) == 10
        await trio.sleep(4)
        assert await budget.execute(None, ctx) == 6
        with trio.move_on_after(2):
            assert await budget.execute(None, ctx) == 2
        with trio.move_on_after(100):
            assert await budget.execute(None, ctx) == 6
        with trio.CancelScope(shield=True):
            assert await budget.execute(None, ctx) is None


async def test_remaining_is_zero_once_cancelled(ctx: WorkflowContext) -> None:
    """A cancelled scope leaves no time: ``remaining()`` is 0.0, never negative."""
    with trio.CancelScope() as scope:
        scope.cancel()
        assert await budget.execute(None, ctx) == 0.0
    with trio.CancelScope(deadline=trio.current_time() - 5):
        assert await budget.execute(None, ctx) == 0.0


def test_create_child_context_inherits_identity() -> None:
    """A child keeps workflow, correlation and trace identity; its causation is the parent's correlation."""
    parent = WorkflowContext.root(
        "wf", session_id="s", player_id="p", metadata={"m": 1}, tags={"t": "1"}
    )
    parent.baggage["user"] = "u"
    parent.checkpoint("parent only")
    child = parent.create_child_context()
    assert child.workflow_id == "wf"
    assert (child.session_id, child.player_id) == ("s", "p")
    assert child.correlation_id == parent.correlation_id
    assert child.causation_id == parent.correlation_id
    assert child.trace_id == parent.trace_id
    assert child.parent_span_id == parent.span_id
    assert child.trace_flags == parent.trace_flags
    assert child.checkpoints == []
    assert child.start_time >= parent.start_time


def test_child_shares_state_and_copies_annotations() -> None:
    """A child shares the state dict, and gets its own shallow copies of metadata, tags and baggage."""
    parent = WorkflowContext(
        workflow_id="wf",
        metadata={"m": 1},
        tags={"t": "1"},
        baggage={"b": "1"},
        state={"s": 1},
    )
    child = parent.create_child_context()
    assert child.state is parent.state
    child.state["from_child"] = True
    assert parent.state["from_child"] is True
    for name in ("metadata", "tags", "baggage"):
        mine, theirs = getattr(child, name), getattr(parent, name)
        assert mine == theirs
        assert mine is not theirs
        mine["child_only"] = "x"
        assert "child_only" not in theirs
    child.checkpoint("child")
    assert parent.checkpoints == []


def test_child_copies_are_shallow() -> None:
    """Nothing is deep-copied: a mutable value inside metadata is the same object in the child."""
    shared = ["a"]
    parent = WorkflowContext(workflow_id="wf", metadata={"list": shared})
    assert parent.create_child_context().metadata["list"] is shared


def test_root_starts_a_new_trace() -> None:
    """``WorkflowContext.root(workflow_id)`` gets a 32-hex trace_id and a 16-hex span_id."""
    a = WorkflowContext.root("wf")
    b = WorkflowContext.root("wf", session_id="s")
    assert a.workflow_id == "wf"
    assert b.session_id == "s"
    assert re.fullmatch(r"[0-9a-f]{32}", a.trace_id or "")
    assert re.fullmatch(r"[0-9a-f]{16}", a.span_id or "")
    assert a.trace_id != b.trace_id
    assert a.parent_span_id is None


def test_root_keeps_given_trace_identity() -> None:
    """Fields passed to root() win over the generated ones; unknown ones are refused."""
    ctx = WorkflowContext.root("wf", trace_id="t" * 32, span_id="s" * 16)
    assert (ctx.trace_id, ctx.span_id) == ("t" * 32, "s" * 16)
    with pytest.raises(TypeError, match="trace"):
        WorkflowContext.root("wf", trace="x")


def test_child_classmethod_opens_a_span_for_a_step() -> None:
    """``WorkflowContext.child(parent, step)`` names the step and gets a fresh span under the parent's."""
    parent = WorkflowContext.root("wf")
    child = WorkflowContext.child(parent, "fetch")
    assert child.step_name == "fetch"
    assert child.trace_id == parent.trace_id
    assert child.parent_span_id == parent.span_id
    assert re.fullmatch(r"[0-9a-f]{16}", child.span_id or "")
    assert child.span_id != parent.span_id
    assert child.causation_id == parent.correlation_id
    assert child.state is parent.state
    grandchild = WorkflowContext.child(child, "parse")
    assert grandchild.parent_span_id == child.span_id
    assert grandchild.trace_id == parent.trace_id
    assert parent.step_name is None


def test_repr_shows_the_fields() -> None:
    """The repr names the class and shows the workflow_id."""
    text = repr(WorkflowContext(workflow_id="orders"))
    assert text.startswith("WorkflowContext(")
    assert "workflow_id='orders'" in text
