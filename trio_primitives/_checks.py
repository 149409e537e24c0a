"""Argument checks shared by the fan-outs (Parallel, Map, Race)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio

from ._base import WorkflowPrimitive


def check_steps(
    kind: str, primitives: Iterable[WorkflowPrimitive[Any, Any]]
) -> list[WorkflowPrimitive[Any, Any]]:
    if isinstance(primitives, WorkflowPrimitive):
        msg = f"{kind} takes a list of primitives, got a single {primitives!r}; write {kind}([{primitives!r}, ...])"
        raise TypeError(msg)
    try:
        iterator = iter(primitives)
    except TypeError:
        msg = (
            f"{kind} takes a list of primitives, got {type(primitives).__qualname__} "
            f"({primitives!r}); write {kind}([first, second, ...])"
        )
        raise TypeError(msg) from None
    steps = list(iterator)
    if not steps:
        msg = (
            f"{kind} needs at least one primitive, got an empty list; pass the "
            f"steps to run, e.g. {kind}([LambdaPrimitive(func)])"
        )
        raise ValueError(msg)
    for index, step in enumerate(steps):
        if not isinstance(step, WorkflowPrimitive):
            msg = (
                f"{kind} takes primitives, got {type(step).__qualname__} ({step!r}) "
                f"at index {index}; wrap a function in LambdaPrimitive(func) first"
            )
            raise TypeError(msg)
    return steps


def check_limiter(owner: str, value: object) -> trio.CapacityLimiter | None:
    """*value* if it is None or a ``trio.CapacityLimiter``.

    Raises:
        TypeError: for anything else.
    """
    if value is None or isinstance(value, trio.CapacityLimiter):
        return value
    msg = (
        f"{owner} limiter must be a trio.CapacityLimiter (shared by the "
        f"primitives that make up one bulkhead) or None, got "
        f"{type(value).__qualname__} ({value!r}); e.g. "
        f"limiter=trio.CapacityLimiter(10)"
    )
    raise TypeError(msg)


def check_mode(owner: str, mode: object, unit: str, units: str) -> str:
    """*mode* if it is ``"fail_fast"`` or ``"settle"``; *unit(s)* name what fails.

    Raises:
        ValueError: for anything else.
    """
    if mode in ("fail_fast", "settle"):
        return mode
    msg = (
        f"{owner} mode must be 'fail_fast' or 'settle', got {mode!r}; "
        f"'fail_fast' raises the first failure and cancels the other {units}, "
        f"'settle' returns each {unit}'s value or exception"
    )
    raise ValueError(msg)
