"""Exceptions raised by the library, and the helpers that raise them."""

from __future__ import annotations

from typing import NoReturn

import trio


class PrimitiveTimeoutError(TimeoutError, trio.TooSlowError):
    """A TimeoutPrimitive's own deadline fired.

    Both a builtin ``TimeoutError`` and a ``trio.TooSlowError``, so either
    ``except`` clause catches it. A cancellation from outside never becomes one.
    """


def not_a_primitive(op: str, other: object) -> NoReturn:
    """Raise the TypeError for composing with something that is not a primitive."""
    msg = (
        f"cannot compose with {op!r}: expected a WorkflowPrimitive, got "
        f"{type(other).__qualname__} ({other!r}); wrap a function in "
        f"LambdaPrimitive(func) first"
    )
    raise TypeError(msg)


def reraise_alone(exc: BaseException) -> NoReturn:
    """Re-raise *exc* out of an ``except`` block without chaining it to the group.

    ``raise exc`` inside a handler would overwrite ``exc.__context__`` with the
    group being handled; restoring it keeps the user's own chain intact.
    """
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def collapse(
    group: BaseExceptionGroup[BaseException],
    primitive: object = None,
    workflow_id: str | None = None,
) -> NoReturn:
    """Raise what a fan-out's exception group stands for.

    One member is re-raised as itself. A group of nothing but cancellations is
    one cancellation: the first ``trio.Cancelled`` is re-raised so that the
    enclosing cancel scope catches it as usual. Anything else (two independent
    failures) propagates as the group itself, nothing dropped; when *primitive*
    is given, a note on the group names it and *workflow_id*.
    """
    members = group.exceptions
    if len(members) == 1:
        reraise_alone(members[0])
    real = [exc for exc in members if not isinstance(exc, trio.Cancelled)]
    if not real:
        reraise_alone(members[0])
    if len(real) == 1:
        # The other members are cancellations of the same outer scope; the
        # failure is what the caller needs, and the scope is already cancelled.
        reraise_alone(real[0])
    if primitive is not None:
        group.add_note(
            f"{len(real)} branches of {primitive!r} failed independently in "
            f"workflow {workflow_id!r}; every failure is in this group: handle "
            f"them with except* or ExceptionGroup.split()"
        )
    raise group
