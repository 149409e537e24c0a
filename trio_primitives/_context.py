"""WorkflowContext: the object that flows through every call of a workflow."""

# No ``from __future__ import annotations`` here: the package re-exports this
# class as ``trio_primitives.WorkflowContext``, where ``typing.get_type_hints``
# (cattrs, pydantic, attrs.resolve_types) would look the field types up by name.
import time
import uuid
import weakref
from typing import Any

import attrs
import trio

from ._hooks import Hooks
from ._observe import Observer, check_observer


def _new_id() -> str:
    return str(uuid.uuid4())


def _hex_id(nbytes: int) -> str:
    return uuid.uuid4().hex[: nbytes * 2]


def _observers(value: object) -> tuple[Observer, ...]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        check_observer(value, "WorkflowContext observers")  # one observer, not a list
        msg = (
            f"WorkflowContext observers must be a list of observers, got one "
            f"({value!r}); write observers=[observer]"
        )
        raise TypeError(msg)
    return tuple(
        check_observer(o, f"WorkflowContext observers[{i}]")
        for i, o in enumerate(value)
    )


def _release() -> None:
    Hooks.change(-1)


# The contexts with observers, each counted once in Hooks.active until it is
# collected (its finalizer releases it) or its observers are emptied.
_watched: (
    "weakref.WeakKeyDictionary[WorkflowContext, weakref.finalize[[], WorkflowContext]]"
)
_watched = weakref.WeakKeyDictionary()


def _watch(context: "WorkflowContext", observers: tuple[Observer, ...]) -> None:
    # While such a context lives, calls take the engine's slow path, so that
    # a call with an unobserved context pays one counter read at its door.
    finalizer = _watched.get(context)
    if observers and finalizer is None:
        Hooks.change(1)
        _watched[context] = weakref.finalize(context, _release)
    elif not observers and finalizer is not None:
        del _watched[context]
        if finalizer.detach() is not None:
            _release()


def _on_observers_set(
    context: "WorkflowContext", attribute: Any, value: Any
) -> tuple[Observer, ...]:
    observers = _observers(value)
    _watch(context, observers)
    return observers


@attrs.define(kw_only=True, eq=False)
class WorkflowContext:
    """The context passed, unchanged, to every step of a workflow.

    Primitives pass the *same* object down: what a step writes to ``state`` is
    visible to the steps after it, and fan-out branches share it too (a write by
    one branch is visible to its siblings as soon as it is made; use distinct
    keys). The library itself never writes to ``state``, ``metadata`` or
    ``checkpoints``, so nothing grows from run to run.

    A child context (``create_child_context()`` or ``WorkflowContext.child``)
    keeps the workflow's identity and its ``state`` dict (the same object: one
    workflow, one blackboard), continues the trace (``trace_id``; the parent's
    ``span_id`` becomes its ``parent_span_id``) and the correlation (same
    ``correlation_id``; ``causation_id`` is the parent's ``correlation_id``).
    It gets shallow copies of ``metadata``, ``tags`` and ``baggage`` (its own
    annotations do not leak to the parent), and its own empty ``checkpoints``
    and a fresh ``start_time``. Nothing is deep-copied. It has the same
    ``observers``.

    ``observers`` (a list, kept as a tuple) receive the events of every call
    made with this context (see ``Observer`` and ``docs/observability.md``).

    Unknown keyword arguments raise ``TypeError``.
    """

    workflow_id: str | None = None
    session_id: str | None = None
    player_id: str | None = None
    step_name: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    state: dict[str, Any] = attrs.field(factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    trace_flags: int = 1
    correlation_id: str = attrs.field(factory=_new_id)
    causation_id: str | None = None
    baggage: dict[str, str] = attrs.field(factory=dict)
    tags: dict[str, str] = attrs.field(factory=dict)
    start_time: float = attrs.field(factory=time.time)
    checkpoints: list[tuple[str, float]] = attrs.field(factory=list)
    observers: tuple[Observer, ...] = attrs.field(
        factory=tuple, converter=_observers, on_setattr=_on_observers_set
    )

    def __attrs_post_init__(self) -> None:
        if self.observers:
            _watch(self, self.observers)

    # copy.copy, deepcopy and pickle make contexts without __init__: count
    # theirs too.
    def __getstate__(self) -> dict[str, Any]:
        return {a.name: getattr(self, a.name) for a in attrs.fields(type(self))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        if self.observers:
            _watch(self, self.observers)

    def checkpoint(self, name: str) -> None:
        """Record a named timing checkpoint (wall-clock seconds since the epoch)."""
        self.checkpoints.append((name, time.time()))

    def elapsed_ms(self) -> float:
        """Milliseconds of wall-clock time since ``start_time``."""
        return (time.time() - self.start_time) * 1000.0

    def remaining(self) -> float | None:
        """Seconds left before the enclosing trio deadline, or None when unbounded.

        Must be called from a trio task; the answer follows trio's clock, so a
        MockClock drives it in tests.
        """
        deadline = trio.current_effective_deadline()
        if deadline == float("inf"):
            return None
        return max(0.0, deadline - trio.current_time())

    def create_child_context(self) -> "WorkflowContext":
        """A child for a nested workflow: same trace and correlation, shared ``state``."""
        return WorkflowContext(
            workflow_id=self.workflow_id,
            session_id=self.session_id,
            player_id=self.player_id,
            step_name=self.step_name,
            metadata=dict(self.metadata),
            state=self.state,
            trace_id=self.trace_id,
            parent_span_id=self.span_id,
            trace_flags=self.trace_flags,
            correlation_id=self.correlation_id,
            causation_id=self.correlation_id,
            baggage=dict(self.baggage),
            tags=dict(self.tags),
            observers=self.observers,
        )

    @classmethod
    def root(cls, workflow_id: str, **fields: Any) -> "WorkflowContext":
        """A context that starts a new trace: fresh ``trace_id`` and ``span_id``."""
        fields.setdefault("trace_id", _hex_id(16))
        fields.setdefault("span_id", _hex_id(8))
        return cls(workflow_id=workflow_id, **fields)

    @classmethod
    def child(cls, parent: "WorkflowContext", step_name: str) -> "WorkflowContext":
        """A child of *parent* for the step *step_name*, with a span of its own."""
        child = parent.create_child_context()
        child.step_name = step_name
        child.span_id = _hex_id(8)
        return child
