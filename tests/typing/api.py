"""Static API checks: type-checked by ``mypy --strict``, never run.

Each ``assert_type`` pins what users' type checkers see; each
``# type: ignore[code]`` pins an error mypy must keep reporting (with
``warn_unused_ignores`` on, losing that error fails CI).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, Iterable
from typing import Any, assert_type

from trio_primitives import (
    LambdaPrimitive,
    MapPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)


class A: ...


class B: ...


class C: ...


class D: ...


def sync_a_to_b(data: A, context: WorkflowContext) -> B:
    return B()


async def async_b_to_c(data: B, context: WorkflowContext) -> C:
    return C()


def sync_a_to_c(data: A, context: WorkflowContext) -> C:
    return C()


async def async_with_extra(extra: int, data: A, context: WorkflowContext) -> B:
    return B()


class Mine(WorkflowPrimitive[C, D]):
    """A user-written primitive."""

    async def execute(self, input_data: C, context: WorkflowContext) -> D:
        return D()


# LambdaPrimitive infers In and Out from sync and async functions alike.
ab = LambdaPrimitive(sync_a_to_b)
bc = LambdaPrimitive(async_b_to_c)
ac = LambdaPrimitive(sync_a_to_c)
assert_type(ab, LambdaPrimitive[A, B])
assert_type(bc, LambdaPrimitive[B, C])
# A partial's parameters are not tracked; its result type is.
assert_type(
    LambdaPrimitive(functools.partial(async_with_extra, 1)), LambdaPrimitive[Any, B]
)
explicit: LambdaPrimitive[int, str] = LambdaPrimitive(lambda data, context: str(data))
mine = Mine()


async def executes(ctx: WorkflowContext) -> None:
    assert_type(await ab.execute(A(), ctx), B)
    assert_type(await bc.execute(B(), ctx), C)
    assert_type(await (ab >> bc).execute(A(), ctx), C)
    assert_type(await (ab | ab).execute(A(), ctx), list[B])
    assert_type(await (ab | ac).execute(A(), ctx), list[B | C])


# ``>>`` chains types: A -> B and B -> C make A -> C.
assert_type(ab >> bc, SequentialPrimitive[A, C])
assert_type(ab >> bc >> mine, SequentialPrimitive[A, D])
assert_type(ab >> (bc >> mine), SequentialPrimitive[A, D])
seq: WorkflowPrimitive[A, C] = ab >> bc

# ``|`` fans out over one input type; results are the union of the branches' outputs.
assert_type(ab | ab, ParallelPrimitive[A, B])
assert_type(ab | ac, ParallelPrimitive[A, B | C])
# ParallelPrimitive.__or__ adds a branch (the package's one ``type: ignore[override]``).
assert_type(ab | ab | ac, ParallelPrimitive[A, B | C])
assert_type(ab | (ab | ac), ParallelPrimitive[A, B | list[B | C]])
fan: WorkflowPrimitive[A, list[B]] = ab | ab
assert_type(ParallelPrimitive([ab, ab]), ParallelPrimitive[A, B])

# A fan-out feeds its list of results to the next step.
counted: WorkflowPrimitive[A, int] = (ab | ab) >> LambdaPrimitive(
    lambda results, context: len(results)
)

# Wrong compositions are type errors.
ab >> ab  # type: ignore[operator]
bc >> ab  # type: ignore[operator]
ab | bc  # type: ignore[operator]
ab >> sync_a_to_b  # type: ignore[operator]
3 >> ab  # type: ignore[operator]
sync_a_to_b | ab  # type: ignore[operator]
wrong: WorkflowPrimitive[A, B] = seq  # type: ignore[assignment]
LambdaPrimitive(3)  # type: ignore[call-overload]

# Variance: a step accepting a wider input, or giving a narrower output, fits.
# WorkflowPrimitive is contravariant in its input and covariant in its output.
to_list: WorkflowPrimitive[A, list[int]] = LambdaPrimitive(lambda a, context: [1, 2])
square: WorkflowPrimitive[int, int] = LambdaPrimitive(lambda n, context: n * n)
assert_type(to_list >> MapPrimitive(square), SequentialPrimitive[A, list[int]])
assert_type(
    MapPrimitive(square) >> MapPrimitive(square),
    SequentialPrimitive[Iterable[int] | AsyncIterable[int], list[int]],
)
takes_object: WorkflowPrimitive[object, B] = LambdaPrimitive(lambda x, context: B())
narrower_input: WorkflowPrimitive[A, B] = takes_object

# A settle fan-out returns each branch's value or exception.
assert_type(
    ParallelPrimitive([ab, ab], mode="settle"), ParallelPrimitive[A, B | Exception]
)
