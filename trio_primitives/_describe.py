"""``describe()`` and ``to_mermaid()``: a workflow's graph as text, with its policies.

One table maps each primitive type to a function that returns the node's
label (the primitive's kind and its policies: retry count and backoff,
``Timeout 5 s``, ``Cache ttl 60 s``, limits) and its children, each with an
optional edge label (``then``, ``route a``, ``fallback 1``, ``undo 1``). The
walk reads the primitives' public attributes only; it runs no user code, needs
no trio run, and works anywhere.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Sequence
from typing import Any, Final

import trio

from ._base import WorkflowPrimitive
from ._breaker import CircuitBreakerPrimitive
from ._cache import CachePrimitive
from ._compensation import CompensationPrimitive
from ._compose import ParallelPrimitive, SequentialPrimitive
from ._control import ConditionalPrimitive, RouterPrimitive
from ._fallback import FallbackPrimitive
from ._lambda import LambdaPrimitive, describe_callable
from ._map import MapPrimitive
from ._race import RacePrimitive
from ._rate_limit import RateLimitPrimitive
from ._retry import RetryPrimitive
from ._timeout import _MISSING, TimeoutPrimitive
from .testing._mock import MockPrimitive

AnyPrimitive = WorkflowPrimitive[Any, Any]
#: A child of a node: (edge label or None, the child primitive).
Child = tuple[str | None, AnyPrimitive]
#: A node as the renderers see it: (edge label, node label, children).
Node = tuple[str | None, str, list["Node"]]

#: Deeper nesting is cut off with a marker leaf (it would reach Python's
#: recursion limit long before it made a readable diagram).
MAX_DEPTH: Final = 100

# "Retry 3 times", written with a multiplication sign (ruff flags the literal).
_TIMES: Final = "\N{MULTIPLICATION SIGN}"
_TREE_BRANCH: Final = "├── "
_TREE_LAST: Final = "└── "
_TREE_PIPE: Final = "│   "
_TREE_SPACE: Final = "    "

# Mermaid entity codes (decimal) for every character that could end a quoted
# label or edge text, or be read as markup; a label becomes one line.
_MERMAID_ESCAPES: Final = str.maketrans(
    {
        '"': "#34;",
        "#": "#35;",
        "&": "#38;",
        "<": "#60;",
        ">": "#62;",
        "[": "#91;",
        "]": "#93;",
        "`": "#96;",
        "{": "#123;",
        "|": "#124;",
        "}": "#125;",
    }
)


def _number(value: float) -> str:
    """*value* written plainly: ``5`` for 5.0, ``0.5``, ``inf``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _seconds(value: float) -> str:
    return f"{_number(value)} s"


def _count(number: int, word: str, plural: str | None = None) -> str:
    return f"{number} {word if number == 1 else (plural or word + 's')}"


def _limiter(limiter: trio.CapacityLimiter | None) -> list[str]:
    if limiter is None:
        return []
    return [f"limiter {_number(limiter.total_tokens)}"]


def _names(value: object) -> str:
    """An exception class, a tuple of them, or a predicate, as a short name."""
    if isinstance(value, type):
        return value.__qualname__
    if isinstance(value, tuple | list):
        return " or ".join(_names(item) for item in value)
    return describe_callable(value)


def _parens(head: str, policies: Sequence[str]) -> str:
    return f"{head} ({', '.join(policies)})" if policies else head


def _sequential(p: SequentialPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    return "Sequential", [(None, step) for step in p.primitives]


def _parallel(p: ParallelPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    policies = [_count(len(p.primitives), "branch", "branches")]
    if p.max_concurrency is not None:
        policies.append(f"max_concurrency {p.max_concurrency}")
    if p.mode == "settle":
        policies.append("settle")
    policies += _limiter(p.limiter)
    return _parens("Parallel", policies), [(None, b) for b in p.primitives]


def _lambda(p: LambdaPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    thread = " (thread)" if p.thread else ""
    return f"Lambda {describe_callable(p.func)}{thread}", []


def _retry(p: RetryPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    policies = [f"initial {_seconds(p.initial_delay)}", f"max {_seconds(p.max_delay)}"]
    if p.jitter:
        policies.append("jitter")
    if p.attempt_timeout is not None:
        policies.append(f"attempt timeout {_seconds(p.attempt_timeout)}")
    if p.total_timeout is not None:
        policies.append(f"total timeout {_seconds(p.total_timeout)}")
    retry_on = p.retry_on
    if retry_on is not Exception and tuple(
        retry_on if isinstance(retry_on, tuple | list) else ()
    ) != (Exception,):
        policies.append(f"on {_names(retry_on)}")
    head = f"Retry {p.max_attempts}{_TIMES} backoff {float(p.backoff_factor)!r}"
    return _parens(head, policies), [(None, p.primitive)]


def _timeout(p: TimeoutPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    head = f"Timeout {_seconds(p.timeout_seconds)}"
    if p.fallback is not None:
        return f"{head} (fallback)", [(None, p.primitive), ("fallback", p.fallback)]
    if p.default is not _MISSING:
        head += f" (default {reprlib.repr(p.default)})"
    return head, [(None, p.primitive)]


def _cache(p: CachePrimitive[Any, Any]) -> tuple[str, list[Child]]:
    label = f"Cache ttl {_seconds(p.ttl_seconds)}, max_size {p.max_size}"
    return label, [(None, p.primitive)]


def _fallback(p: FallbackPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    children: list[Child] = [("primary", p.primary)]
    children += [(f"fallback {i}", f) for i, f in enumerate(p.fallbacks, start=1)]
    return "Fallback", children


def _breaker(p: CircuitBreakerPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    config = p.config
    policies = [
        f"{_count(config.failure_threshold, 'failure')} → open",
        f"recovery {_seconds(config.recovery_timeout)}",
        f"{_count(config.success_threshold, 'success', 'successes')} → closed",
    ]
    if config.expected_exception is not Exception:
        policies.append(f"on {_names(config.expected_exception)}")
    return _parens("CircuitBreaker", policies), [(None, p.primitive)]


def _map(p: MapPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    policies = [f"max_concurrency {p.max_concurrency}"]
    if p.max_per_second is not None:
        policies.append(f"{_number(p.max_per_second)}/s")
    if not p.ordered:
        policies.append("unordered")
    if p.mode == "settle":
        policies.append("settle")
    policies += _limiter(p.limiter)
    return _parens("Map", policies), [(None, p.primitive)]


def _race(p: RacePrimitive[Any, Any]) -> tuple[str, list[Child]]:
    policies = [_count(len(p.primitives), "branch", "branches"), *_limiter(p.limiter)]
    return _parens("Race", policies), [(None, b) for b in p.primitives]


def _rate_limit(p: RateLimitPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    label = f"RateLimit {_number(p.max_per_second)}/s burst {p.burst}"
    return label, [(None, p.primitive)]


def _conditional(p: ConditionalPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    children: list[Child] = [("then", p.then_primitive)]
    if p.else_primitive is not None:
        children.append(("else", p.else_primitive))
    return f"Conditional {describe_callable(p.condition)}", children


def _router(p: RouterPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    policies = f"routes {', '.join(p.routes)}"
    if p.default is not None:
        policies += f"; default {p.default}"
    label = f"Router {describe_callable(p.router_fn)} ({policies})"
    return label, [(f"route {key}", route) for key, route in p.routes.items()]


def _saga(p: CompensationPrimitive[Any, Any]) -> tuple[str, list[Child]]:
    steps = p.steps
    label = f"Saga ({_count(len(steps), 'step')}, grace {_seconds(p.grace_period)})"
    children: list[Child] = []
    for number, (action, undo) in enumerate(steps, start=1):
        children.append((f"step {number}", action))
        if undo is not None:
            children.append((f"undo {number}", undo))
    return label, children


def _mock(p: MockPrimitive) -> tuple[str, list[Child]]:
    return f"Mock {p.name!r}", []


# Exact types only: a run-time subclass (one that overrides execute) runs
# code of its own, so it is shown as what it is, a leaf named by its class.
_TABLE: Final[dict[type, Callable[[Any], tuple[str, list[Child]]]]] = {
    CachePrimitive: _cache,
    CircuitBreakerPrimitive: _breaker,
    CompensationPrimitive: _saga,
    ConditionalPrimitive: _conditional,
    FallbackPrimitive: _fallback,
    LambdaPrimitive: _lambda,
    MapPrimitive: _map,
    MockPrimitive: _mock,
    ParallelPrimitive: _parallel,
    RacePrimitive: _race,
    RateLimitPrimitive: _rate_limit,
    RetryPrimitive: _retry,
    RouterPrimitive: _router,
    SequentialPrimitive: _sequential,
    TimeoutPrimitive: _timeout,
}


def _one_line(text: str) -> str:
    return " ".join(text.split()) if not text.isprintable() else text


def _label(primitive: AnyPrimitive) -> tuple[str, list[Child]]:
    render = _TABLE.get(type(primitive))
    if render is None:
        return type(primitive).__qualname__, []
    label, children = render(primitive)
    return _one_line(label), children


def _walk(
    edge: str | None, primitive: AnyPrimitive, path: set[int], depth: int
) -> Node:
    label, children = _label(primitive)
    if not children:
        return edge, label, []
    if id(primitive) in path:
        return edge, f"{label} (cycle: contains itself, not expanded)", []
    if depth >= MAX_DEPTH:
        return edge, f"{label} (nested more than {MAX_DEPTH} deep, not expanded)", []
    path.add(id(primitive))
    nodes = [
        _walk(None if e is None else _one_line(e), child, path, depth + 1)
        for e, child in children
    ]
    path.discard(id(primitive))
    return edge, label, nodes


def tree(primitive: AnyPrimitive) -> Node:
    """The graph of *primitive* as nested ``(edge, label, children)`` tuples.

    A primitive that appears twice is shown twice (the result is a tree);
    one that contains itself is shown once more as a marked leaf.
    """
    return _walk(None, primitive, set(), 0)


def describe(primitive: AnyPrimitive) -> str:
    """*primitive*'s graph as a text tree (``├── `` / ``└── `` / ``│   ``).

    A child reached through a named edge reads ``then: Lambda f``.
    """
    _, label, children = tree(primitive)
    lines = [label]
    _tree_lines(children, "", lines)
    return "\n".join(lines)


def _tree_lines(children: list[Node], prefix: str, lines: list[str]) -> None:
    last = len(children) - 1
    for index, (edge, label, grandchildren) in enumerate(children):
        branch, extend = (
            (_TREE_LAST, _TREE_SPACE) if index == last else (_TREE_BRANCH, _TREE_PIPE)
        )
        text = label if edge is None else f"{edge}: {label}"
        lines.append(f"{prefix}{branch}{text}")
        _tree_lines(grandchildren, prefix + extend, lines)


def mermaid_text(text: str) -> str:
    """*text* made safe inside a quoted Mermaid label, as entity codes."""
    return text.translate(_MERMAID_ESCAPES)


def to_mermaid(primitive: AnyPrimitive) -> str:
    """*primitive*'s graph as a Mermaid ``flowchart TD``.

    Nodes are ``n0``, ``n1``, ... in depth-first order, each declared with a
    quoted label, followed by the edge from its parent (with the edge label,
    if any, as the edge text).
    """
    lines = ["flowchart TD"]
    counter = [0]

    def emit(node: Node, parent: str | None) -> None:
        edge, label, children = node
        name = f"n{counter[0]}"
        counter[0] += 1
        lines.append(f'    {name}["{mermaid_text(label)}"]')
        if parent is not None:
            arrow = "-->" if edge is None else f'-->|"{mermaid_text(edge)}"|'
            lines.append(f"    {parent} {arrow} {name}")
        for child in children:
            emit(child, name)

    emit(tree(primitive), None)
    return "\n".join(lines)
