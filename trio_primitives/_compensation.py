"""CompensationPrimitive: sagas, whose completed steps are undone when a later one fails."""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Iterable
from typing import Any, Final, TypeAlias, final, overload

import trio

from ._base import In, Out, Primitive, WorkflowPrimitive, check_primitive
from ._context import WorkflowContext
from ._errors import PrimitiveTimeoutError
from ._lambda import Step, run_step, step_of

#: One step of a saga as given: ``(action, undo)``, with ``undo=None`` when the
#: action has nothing to undo.
SagaStep: TypeAlias = tuple[
    WorkflowPrimitive[Any, Any], WorkflowPrimitive[Any, Any] | None
]


class _Missing(enum.Enum):
    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing.MISSING
_DEFAULT_GRACE: Final = 30.0
_USAGE: Final = (
    "write CompensationPrimitive(steps=[(action, undo), ...]) or the one-step "
    "form CompensationPrimitive(forward, compensation)"
)


def _grace_period(value: object) -> float:
    # bool is a number to Python, but grace_period=True is a slip.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = (
            f"CompensationPrimitive grace_period must be a number of seconds, got "
            f"{type(value).__qualname__} ({value!r}); pass e.g. grace_period=30.0"
        )
        raise TypeError(msg)
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not (seconds > 0 and math.isfinite(seconds)):
        msg = (
            f"CompensationPrimitive grace_period must be a positive finite number "
            f"of seconds, got {value!r}; the undos need a bounded time to run, "
            f"pass e.g. grace_period=30.0"
        )
        raise ValueError(msg)
    return seconds


def _saga_steps(steps: object) -> tuple[SagaStep, ...]:
    if isinstance(steps, WorkflowPrimitive | str | bytes) or not isinstance(
        steps, Iterable
    ):
        msg = (
            f"CompensationPrimitive steps must be a list of (action, undo) pairs, "
            f"got {type(steps).__qualname__} ({steps!r}); {_USAGE}"
        )
        if callable(steps):
            msg = (
                f"CompensationPrimitive takes primitives, got the function "
                f"{steps!r}; wrap it in LambdaPrimitive(func), and {_USAGE}"
            )
        raise TypeError(msg)
    pairs = tuple(steps)
    if not pairs:
        msg = (
            "CompensationPrimitive needs at least one step, got an empty list; "
            "pass steps=[(action, undo), ...]"
        )
        raise ValueError(msg)
    checked: list[SagaStep] = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            hint = ""
            if isinstance(pair, WorkflowPrimitive):
                hint = f" such as ({pair!r}, None) when it has nothing to undo"
            msg = (
                f"CompensationPrimitive steps[{index}] must be an (action, undo) "
                f"pair{hint}, got {type(pair).__qualname__} ({pair!r}); write "
                f"(action, undo), with undo=None when the action has nothing to undo"
            )
            raise TypeError(msg)
        action, undo = pair
        check_primitive(f"CompensationPrimitive steps[{index}] action", action)
        if undo is not None:
            check_primitive(
                f"CompensationPrimitive steps[{index}] undo",
                undo,
                "a WorkflowPrimitive or None (nothing to undo)",
            )
        checked.append((action, undo))
    return tuple(checked)


@final
class CompensationPrimitive(Primitive[In, Out]):
    """Run a saga: actions in order, undoing the completed ones if a later one fails.

    ``CompensationPrimitive(steps=[(action, undo), ...])`` runs each action in
    place, in the caller's task, on the previous action's output (the first on
    the call's input), and returns the last action's output. The success path
    runs no undo and adds no checkpoint of its own. ``undo`` may be ``None``
    for an action that has nothing to undo.

    When an action fails, with an exception (a TimeoutPrimitive's timeout
    included) or with a cancellation (an outer cancel scope, a failing sibling
    in a fan-out, ``KeyboardInterrupt``, ``SystemExit``), the undos of the
    actions that *completed* run in reverse order, each on what its own
    action returned and with the same context. The failed action itself is
    not undone: it must clean up its own partial effect (a one-step
    CompensationPrimitive as the action does that). ``GeneratorExit`` (a
    coroutine being closed) is not compensated: nothing can be awaited then.

    The undos run under a shielded cancel scope, so the cancellation that
    stopped the saga does not stop them, bounded by *grace_period* seconds of
    trio time from the start of the compensation: the caller of a cancelled
    saga (an enclosing TimeoutPrimitive too) waits for the undos, at most
    that long. An undo still running when the grace period ends is cancelled
    and counts as failed with a `PrimitiveTimeoutError`; an undo not started
    by then is not started and counts as failed the same way.

    An undo that fails does not stop the others. Then:

    - every undo succeeded: the original failure propagates as itself;
    - the original failure is an ``Exception``: an ``ExceptionGroup`` of the
      original failure followed by each undo's failure, in the order undone,
      propagates (its message names the saga, the failed step and the
      workflow_id; each undo error has a note naming its step);
    - the original failure is a cancellation (any ``BaseException`` that is
      not an ``Exception``): it propagates as itself, never swallowed or
      converted, with a note per undo failure and the failures themselves in
      its ``compensation_errors`` list.

    A ``BaseException`` raised by an undo itself (a second Ctrl-C) stops the
    compensation at once and propagates, with a note naming the original
    failure (also its ``__context__``).

    The one-step form ``CompensationPrimitive(forward, compensation)`` is
    TTA.dev's: when *forward* fails, *compensation* runs on the call's
    original input, under the same rules, then the failure propagates.

    Args:
        forward: the one-step form's action; or, given positionally, the
            list of ``(action, undo)`` pairs.
        compensation: the one-step form's undo, run on the original input
            when *forward* fails.
        steps: the saga, a non-empty list of ``(action, undo)`` pairs.
        grace_period: the time the undos may take in all, a positive finite
            number of seconds of trio time.

    Raises:
        ExceptionGroup: the original exception and the undos' failures, when
            an action raised an exception and an undo failed too.
        PrimitiveTimeoutError: inside that group (or in
            ``compensation_errors``), for an undo the grace period cut off.
        TypeError: at construction, when the forms are mixed, a step is not
            an ``(action, undo)`` pair of primitives, or *grace_period* is
            not a number.
        ValueError: at construction, for an empty list of steps or a
            *grace_period* that is not positive and finite.
    """

    __slots__ = (
        "_actions",
        "_one_step",
        "_undos",
        "compensation",
        "forward",
        "grace_period",
        "steps",
    )

    @overload
    def __init__(
        self,
        forward: WorkflowPrimitive[In, Out],
        compensation: WorkflowPrimitive[In, Any],
        *,
        grace_period: float = _DEFAULT_GRACE,
    ) -> None: ...
    @overload
    def __init__(
        self: CompensationPrimitive[Any, Any],
        steps: Iterable[SagaStep],
        /,
        *,
        grace_period: float = _DEFAULT_GRACE,
    ) -> None: ...
    @overload
    def __init__(
        self: CompensationPrimitive[Any, Any],
        *,
        steps: Iterable[SagaStep],
        grace_period: float = _DEFAULT_GRACE,
    ) -> None: ...
    def __init__(
        self,
        forward: Any = _MISSING,
        compensation: Any = _MISSING,
        *,
        steps: Any = _MISSING,
        grace_period: float = _DEFAULT_GRACE,
    ) -> None:
        self.grace_period: float = _grace_period(grace_period)
        one_step = isinstance(forward, WorkflowPrimitive)
        if steps is not _MISSING:
            if forward is not _MISSING or compensation is not _MISSING:
                msg = (
                    f"CompensationPrimitive takes steps= or (forward, compensation), "
                    f"not both; got steps={steps!r}, forward={forward!r}, "
                    f"compensation={compensation!r}; {_USAGE}"
                )
                raise TypeError(msg)
        elif one_step:
            if compensation is _MISSING or compensation is None:
                msg = (
                    f"CompensationPrimitive(forward, compensation) needs a "
                    f"compensation primitive, got forward={forward!r} and "
                    f"compensation={compensation!r}; pass the undo as the second "
                    f"argument, or use steps=[(forward, None)] if nothing is undone"
                )
                raise TypeError(msg)
            check_primitive("CompensationPrimitive compensation", compensation)
            steps = [(forward, compensation)]
        elif forward is _MISSING:
            msg = f"CompensationPrimitive needs its steps; {_USAGE}"
            raise TypeError(msg)
        elif compensation is not _MISSING:
            if isinstance(forward, list | tuple):
                msg = (
                    f"CompensationPrimitive(steps) takes no second argument, got "
                    f"{compensation!r}; put each undo in its step: "
                    f"steps=[(action, undo), ...]"
                )
                raise TypeError(msg)
            check_primitive("CompensationPrimitive forward", forward)
        else:
            steps = forward
        #: The saga as ``(action, undo)`` pairs; one pair in the one-step form.
        self.steps: tuple[SagaStep, ...] = _saga_steps(steps)
        self._one_step: bool = one_step
        #: The one-step form's primitives (TTA.dev's attributes); None otherwise.
        self.forward: WorkflowPrimitive[In, Out] | None = forward if one_step else None
        self.compensation: WorkflowPrimitive[In, Any] | None = (
            compensation if one_step else None
        )
        # Planned once here so that a call does no lookups.
        self._actions: tuple[Step, ...] = tuple(step_of(a) for a, _ in self.steps)
        self._undos: tuple[Step | None, ...] = tuple(
            None if u is None else step_of(u) for _, u in self.steps
        )

    def __repr__(self) -> str:
        grace = ""
        if self.grace_period != _DEFAULT_GRACE:
            grace = f", grace_period={self.grace_period!r}"
        if self._one_step:
            return (
                f"CompensationPrimitive(forward={self.forward!r}, "
                f"compensation={self.compensation!r}{grace})"
            )
        pairs = ", ".join(f"({a!r}, {u!r})" for a, u in self.steps)
        return f"CompensationPrimitive(steps=[{pairs}]{grace})"

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        # What each completed action returned, in order: its undo's input.
        done: list[Any] = []
        data: Any = input_data
        try:
            # Through run_step, so that under the asyncio bridge user code runs
            # as asyncio Tasks (the contract's section 10).
            for (action, _), step in zip(self.steps, self._actions, strict=True):
                data = await run_step(action, step, data, context)
                done.append(data)
        except BaseException as failure:
            if not isinstance(failure, GeneratorExit):
                if self._one_step:  # TTA.dev's compensation gets the call's input
                    done = [input_data]
                group = await self._compensate(failure, done, context)
                if group is not None:
                    # The original is the group's first member; chaining the
                    # group to it would print it twice.
                    raise group from None
            raise
        return data  # type: ignore[no-any-return]

    async def _compensate(
        self, failure: BaseException, done: list[Any], context: WorkflowContext
    ) -> ExceptionGroup[Exception] | None:
        """Run the undos of *done*; return the group to raise, if any."""
        failed_at = 0 if self._one_step else len(done)
        errors: list[Exception] = []
        deadline = trio.current_time() + self.grace_period
        with trio.CancelScope(shield=True):
            for index in range(len(done) - 1, -1, -1):
                undo = self._undos[index]
                undo_primitive = self.steps[index][1]
                if undo is None or undo_primitive is None:
                    continue
                if trio.current_time() >= deadline:
                    errors.append(self._out_of_time(index, context, started=False))
                    continue
                try:
                    with trio.CancelScope(deadline=deadline) as scope:
                        await run_step(undo_primitive, undo, done[index], context)
                except Exception as exc:
                    exc.add_note(
                        f"raised by {self._undo_name(index)} while compensating "
                        f"the failure of {self._step_name(failed_at)} in "
                        f"workflow {context.workflow_id!r}"
                    )
                    errors.append(exc)
                except BaseException as exc:
                    exc.add_note(
                        f"raised by {self._undo_name(index)} while compensating "
                        f"the failure of {self._step_name(failed_at)} in workflow "
                        f"{context.workflow_id!r} ({type(failure).__qualname__}: "
                        f"{failure}); the compensation stopped here, so the "
                        f"undos of the steps before it did not run"
                    )
                    raise
                else:
                    if scope.cancelled_caught:
                        errors.append(self._out_of_time(index, context, started=True))
        if not errors:
            return None
        if isinstance(failure, Exception):
            msg = (
                f"{self!r} failed at {self._step_name(failed_at)} in workflow "
                f"{context.workflow_id!r}, and {len(errors)} undo(s) failed while "
                f"compensating it, so its effects are only partly undone; the "
                f"group holds the failure, then each undo's failure in the order "
                f"undone: handle them with except* or ExceptionGroup.split()"
            )
            return ExceptionGroup(msg, [failure, *errors])
        for error in errors:
            failure.add_note(
                f"while compensating this {type(failure).__qualname__} of "
                f"{self._step_name(failed_at)} of {self!r}, an undo failed in "
                f"workflow {context.workflow_id!r}: {type(error).__qualname__}: "
                f"{error}"
            )
        previous = getattr(failure, "compensation_errors", None)
        if isinstance(previous, list):
            errors = [*previous, *errors]
        failure.compensation_errors = errors  # type: ignore[attr-defined]
        return None

    def _step_name(self, index: int) -> str:
        if self._one_step:
            return f"forward {self.steps[0][0]!r}"
        return f"step {index + 1} of {len(self.steps)} ({self.steps[index][0]!r})"

    def _undo_name(self, index: int) -> str:
        if self._one_step:
            return f"compensation {self.steps[0][1]!r}"
        return f"the undo of step {index + 1} ({self.steps[index][1]!r})"

    def _out_of_time(
        self, index: int, context: WorkflowContext, *, started: bool
    ) -> PrimitiveTimeoutError:
        what = (
            "was still running, and was cancelled,"
            if started
            else "had not started, and was skipped,"
        )
        msg = (
            f"{self._undo_name(index)} {what} when grace_period="
            f"{self.grace_period!r} s of {self!r} ran out in workflow "
            f"{context.workflow_id!r}; its action's effect may still be in place: "
            f"raise grace_period or make the undos faster"
        )
        return PrimitiveTimeoutError(msg)
