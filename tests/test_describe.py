# ruff: noqa: RUF001
"""describe() and to_mermaid(): a workflow's graph as a text tree and a Mermaid diagram.

Run as a script (``python tests/test_describe.py``), this module rewrites the
generated blocks of docs/introspection.md from the code; the tests check them.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_primitives import (
    CachePrimitive,
    CircuitBreakerConfig,
    CircuitBreakerPrimitive,
    CompensationPrimitive,
    ConditionalPrimitive,
    FallbackPrimitive,
    LambdaPrimitive,
    MapPrimitive,
    ParallelPrimitive,
    RacePrimitive,
    RateLimitPrimitive,
    RetryPrimitive,
    RetryStrategy,
    RouterPrimitive,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)
from trio_primitives.testing import MockPrimitive

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "introspection.md"
MODELS = ["phi-4", "qwen-0.5b", "qwen-1.5b"]


def model_evaluation() -> WorkflowPrimitive[Any, Any]:
    """The seed's model-evaluation workflow, built by docs/examples/model_evaluation.py."""
    spec = importlib.util.spec_from_file_location(
        "example_model_evaluation_describe",
        ROOT / "docs" / "examples" / "model_evaluation.py",
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    workflow: WorkflowPrimitive[Any, Any] = module.build_workflow(MODELS)
    return workflow


def render_doc(text: str) -> str:
    """*text* (docs/introspection.md) with each generated block replaced by what the code produces now."""
    workflow = model_evaluation()
    blocks = {"describe": workflow.describe(), "to_mermaid": workflow.to_mermaid()}
    for name, body in blocks.items():
        pattern = re.compile(
            rf"(<!-- generated: {name} .*?-->\n```\w+\n)(.*?)(```)", re.DOTALL
        )

        def fill(match: re.Match[str], body: str = body) -> str:
            return f"{match[1]}{body}\n{match[3]}"

        text, count = pattern.subn(fill, text, count=1)
        assert count == 1, f"no generated {name} block in {DOC}"
    return text


async def step(data: Any, context: WorkflowContext) -> Any:
    """A named async step."""
    return data


def blocking(data: Any, context: WorkflowContext) -> Any:
    """A named sync step, run in a thread."""
    return data


def is_big(data: Any, context: WorkflowContext) -> bool:
    """A named condition."""
    return bool(data)


def pick(data: Any, context: WorkflowContext) -> str:
    """A named router function."""
    return "fast"


def transient(exc: Exception) -> bool:
    """A named retry_on predicate."""
    return True


a = MockPrimitive("a")
b = MockPrimitive("b")
c = MockPrimitive("c")

# (id, build, expected describe())
CASES: list[tuple[str, Callable[[], WorkflowPrimitive[Any, Any]], str]] = [
    ("mock", lambda: a, "Mock 'a'"),
    ("lambda", lambda: LambdaPrimitive(step), "Lambda step"),
    (
        "lambda-thread",
        lambda: LambdaPrimitive(blocking, thread=True),
        "Lambda blocking (thread)",
    ),
    ("sequential", lambda: a >> b, "Sequential\n├── Mock 'a'\n└── Mock 'b'"),
    (
        "parallel",
        lambda: a | b | c,
        "Parallel (3 branches)\n├── Mock 'a'\n├── Mock 'b'\n└── Mock 'c'",
    ),
    (
        "parallel-options",
        lambda: ParallelPrimitive(
            [a],
            max_concurrency=10,
            mode="settle",
            limiter=trio.CapacityLimiter(5),
        ),
        "Parallel (1 branch, max_concurrency 10, settle, limiter 5)\n└── Mock 'a'",
    ),
    (
        "retry",
        lambda: RetryPrimitive(a),
        "Retry 3× backoff 2.0 (initial 1 s, max 60 s, jitter)\n└── Mock 'a'",
    ),
    (
        "retry-options",
        lambda: RetryPrimitive(
            a,
            max_attempts=5,
            backoff_factor=1.5,
            initial_delay=0.5,
            max_delay=10,
            jitter=False,
            retry_on=(ConnectionError, TimeoutError),
            attempt_timeout=2,
            total_timeout=30.5,
        ),
        "Retry 5× backoff 1.5 (initial 0.5 s, max 10 s, attempt timeout 2 s, "
        "total timeout 30.5 s, on ConnectionError or TimeoutError)\n└── Mock 'a'",
    ),
    (
        "retry-strategy-predicate",
        lambda: RetryPrimitive(
            a, strategy=RetryStrategy(max_retries=1, jitter=False), retry_on=transient
        ),
        "Retry 2× backoff 2.0 (initial 1 s, max 60 s, on transient)\n└── Mock 'a'",
    ),
    (
        "retry-on-one-class",
        lambda: RetryPrimitive(a, max_attempts=1, retry_on=OSError),
        "Retry 1× backoff 2.0 (initial 1 s, max 60 s, jitter, on OSError)\n└── Mock 'a'",
    ),
    (
        "retry-on-exception",
        lambda: RetryPrimitive(a, retry_on=Exception),
        "Retry 3× backoff 2.0 (initial 1 s, max 60 s, jitter)\n└── Mock 'a'",
    ),
    ("timeout", lambda: TimeoutPrimitive(a, 5), "Timeout 5 s\n└── Mock 'a'"),
    (
        "timeout-fallback",
        lambda: TimeoutPrimitive(a, 0.5, fallback=b),
        "Timeout 0.5 s (fallback)\n├── Mock 'a'\n└── fallback: Mock 'b'",
    ),
    (
        "timeout-default",
        lambda: TimeoutPrimitive(a, 5, default=None),
        "Timeout 5 s (default None)\n└── Mock 'a'",
    ),
    (
        "cache",
        lambda: CachePrimitive(a, lambda d, c: d, ttl_seconds=60),
        "Cache ttl 60 s, max_size 1024\n└── Mock 'a'",
    ),
    (
        "fallback",
        lambda: FallbackPrimitive(a, b),
        "Fallback\n├── primary: Mock 'a'\n└── fallback 1: Mock 'b'",
    ),
    (
        "fallback-list",
        lambda: FallbackPrimitive(a, [b, c]),
        "Fallback\n├── primary: Mock 'a'\n├── fallback 1: Mock 'b'\n"
        "└── fallback 2: Mock 'c'",
    ),
    (
        "breaker",
        lambda: CircuitBreakerPrimitive(a),
        "CircuitBreaker (5 failures → open, recovery 60 s, 2 successes → closed)\n"
        "└── Mock 'a'",
    ),
    (
        "breaker-config",
        lambda: CircuitBreakerPrimitive(
            a,
            config=CircuitBreakerConfig(
                failure_threshold=1,
                recovery_timeout=0.25,
                success_threshold=1,
                expected_exception=(ValueError, KeyError),
            ),
        ),
        "CircuitBreaker (1 failure → open, recovery 0.25 s, 1 success → closed, "
        "on ValueError or KeyError)\n└── Mock 'a'",
    ),
    ("map", lambda: MapPrimitive(a), "Map (max_concurrency 100)\n└── Mock 'a'"),
    (
        "map-options",
        lambda: MapPrimitive(
            a,
            10,
            max_per_second=2.5,
            ordered=False,
            mode="settle",
            limiter=trio.CapacityLimiter(3),
        ),
        "Map (max_concurrency 10, 2.5/s, unordered, settle, limiter 3)\n└── Mock 'a'",
    ),
    (
        "race",
        lambda: RacePrimitive([a, b]),
        "Race (2 branches)\n├── Mock 'a'\n└── Mock 'b'",
    ),
    (
        "race-limiter",
        lambda: RacePrimitive([a], limiter=trio.CapacityLimiter(1)),
        "Race (1 branch, limiter 1)\n└── Mock 'a'",
    ),
    (
        "rate-limit",
        lambda: RateLimitPrimitive(a, 10),
        "RateLimit 10/s burst 10\n└── Mock 'a'",
    ),
    (
        "rate-limit-burst",
        lambda: RateLimitPrimitive(a, 0.5, burst=3),
        "RateLimit 0.5/s burst 3\n└── Mock 'a'",
    ),
    (
        "conditional",
        lambda: ConditionalPrimitive(is_big, a, b),
        "Conditional is_big\n├── then: Mock 'a'\n└── else: Mock 'b'",
    ),
    (
        "conditional-no-else",
        lambda: ConditionalPrimitive(is_big, a),
        "Conditional is_big\n└── then: Mock 'a'",
    ),
    (
        "router",
        lambda: RouterPrimitive({"fast": a, "slow": b}, pick, default="fast"),
        "Router pick (routes fast, slow; default fast)\n├── route fast: Mock 'a'\n"
        "└── route slow: Mock 'b'",
    ),
    (
        "router-no-default",
        lambda: RouterPrimitive({"only": a}, pick),
        "Router pick (routes only)\n└── route only: Mock 'a'",
    ),
    (
        "saga",
        lambda: CompensationPrimitive(steps=[(a, b), (c, None)], grace_period=2),
        "Saga (2 steps, grace 2 s)\n├── step 1: Mock 'a'\n├── undo 1: Mock 'b'\n"
        "└── step 2: Mock 'c'",
    ),
    (
        "saga-one-step",
        lambda: CompensationPrimitive(a, b),
        "Saga (1 step, grace 30 s)\n├── step 1: Mock 'a'\n└── undo 1: Mock 'b'",
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(build, expected, id=name) for name, build, expected in CASES],
)
def test_each_primitive_alone(
    build: Callable[[], WorkflowPrimitive[Any, Any]], expected: str
) -> None:
    """Each primitive type describes itself with its policies, and its children one level down."""
    assert build().describe() == expected


@pytest.mark.parametrize(
    "build", [pytest.param(build, id=name) for name, build, _ in CASES]
)
def test_mermaid_has_one_node_per_line_of_the_tree(
    build: Callable[[], WorkflowPrimitive[Any, Any]],
) -> None:
    """The Mermaid diagram has a node per line of the text tree, with the same labels, and an edge per child."""
    workflow = build()
    tree_lines = workflow.describe().split("\n")
    mermaid = workflow.to_mermaid().split("\n")
    nodes = [line for line in mermaid if re.fullmatch(r'    n\d+\[".*"\]', line)]
    edges = [line for line in mermaid if " -->" in line]
    assert mermaid[0] == "flowchart TD"
    assert len(nodes) == len(tree_lines)
    assert len(edges) == len(tree_lines) - 1
    assert len(mermaid) == 1 + len(nodes) + len(edges)
    assert nodes[0] == f'    n0["{tree_lines[0]}"]'


MODEL_EVALUATION_TREE = """\
Cache ttl 3600 s, max_size 1024
└── Parallel (3 branches)
    ├── Sequential
    │   ├── Lambda <lambda at model_evaluation.py:42>
    │   └── Timeout 30 s
    │       └── Retry 3× backoff 2.0 (initial 1 s, max 60 s, jitter)
    │           └── Lambda test_model
    ├── Sequential
    │   ├── Lambda <lambda at model_evaluation.py:42>
    │   └── Timeout 30 s
    │       └── Retry 3× backoff 2.0 (initial 1 s, max 60 s, jitter)
    │           └── Lambda test_model
    └── Sequential
        ├── Lambda <lambda at model_evaluation.py:42>
        └── Timeout 30 s
            └── Retry 3× backoff 2.0 (initial 1 s, max 60 s, jitter)
                └── Lambda test_model"""


def test_model_evaluation_describe() -> None:
    """The seed's model-evaluation workflow reads as a cached fan-out of inject >> timeout(retry(test_model)) chains."""
    assert model_evaluation().describe() == MODEL_EVALUATION_TREE


def test_model_evaluation_mermaid() -> None:
    """The seed's model-evaluation workflow is a Mermaid flowchart with numbered nodes, escaped labels and parent edges."""
    branch = [
        '    n{s}["Sequential"]',
        "    n1 --> n{s}",
        '    n{i}["Lambda #60;lambda at model_evaluation.py:42#62;"]',
        "    n{s} --> n{i}",
        '    n{t}["Timeout 30 s"]',
        "    n{s} --> n{t}",
        '    n{r}["Retry 3× backoff 2.0 (initial 1 s, max 60 s, jitter)"]',
        "    n{t} --> n{r}",
        '    n{m}["Lambda test_model"]',
        "    n{r} --> n{m}",
    ]
    expected = [
        "flowchart TD",
        '    n0["Cache ttl 3600 s, max_size 1024"]',
        '    n1["Parallel (3 branches)"]',
        "    n0 --> n1",
    ]
    for s in (2, 7, 12):
        expected += [
            line.format(s=s, i=s + 1, t=s + 2, r=s + 3, m=s + 4) for line in branch
        ]
    assert model_evaluation().to_mermaid() == "\n".join(expected)


def test_doc_blocks_are_what_the_code_produces() -> None:
    """docs/introspection.md shows exactly the model-evaluation workflow's describe() and to_mermaid() of today."""
    text = DOC.read_text(encoding="utf-8")
    assert render_doc(text) == text, (
        "docs/introspection.md is stale; run `python tests/test_describe.py`"
    )


def test_nesting_draws_continuation_bars() -> None:
    """A nested tree keeps a bar under each unfinished branch and none under a last one."""
    workflow = FallbackPrimitive(
        TimeoutPrimitive(a >> (b | c), 1), RetryPrimitive(a, max_attempts=2)
    )
    assert workflow.describe() == (
        "Fallback\n"
        "├── primary: Timeout 1 s\n"
        "│   └── Sequential\n"
        "│       ├── Mock 'a'\n"
        "│       └── Parallel (2 branches)\n"
        "│           ├── Mock 'b'\n"
        "│           └── Mock 'c'\n"
        "└── fallback 1: Retry 2× backoff 2.0 (initial 1 s, max 60 s, jitter)\n"
        "    └── Mock 'a'"
    )


def test_mermaid_edge_labels() -> None:
    """A named edge carries its name as quoted edge text."""
    workflow = ConditionalPrimitive(is_big, a, TimeoutPrimitive(b, 5, fallback=c))
    assert workflow.to_mermaid() == "\n".join(
        [
            "flowchart TD",
            '    n0["Conditional is_big"]',
            """    n1["Mock 'a'"]""",
            '    n0 -->|"then"| n1',
            '    n2["Timeout 5 s (fallback)"]',
            '    n0 -->|"else"| n2',
            """    n3["Mock 'b'"]""",
            "    n2 --> n3",
            """    n4["Mock 'c'"]""",
            '    n2 -->|"fallback"| n4',
        ]
    )


def test_mermaid_escapes_weird_names() -> None:
    """Quotes, brackets, pipes, angle brackets, braces, backticks, & and # in names become Mermaid entity codes."""

    def weird(data: Any, context: WorkflowContext) -> Any:
        return data

    weird.__qualname__ = 'we"ird[1]|<x>{y}`z`&#amp;'
    router = RouterPrimitive({'k"|]': LambdaPrimitive(weird)}, pick)
    assert router.to_mermaid() == "\n".join(
        [
            "flowchart TD",
            '    n0["Router pick (routes k#34;#124;#93;)"]',
            '    n1["Lambda we#34;ird#91;1#93;#124;#60;x#62;#123;y#125;#96;z#96;#38;#35;amp;"]',
            '    n0 -->|"route k#34;#124;#93;"| n1',
        ]
    )
    # The text tree keeps the name as it is.
    assert router.describe().endswith(
        '└── route k"|]: Lambda we"ird[1]|<x>{y}`z`&#amp;'
    )


def test_line_breaks_in_names_become_spaces() -> None:
    """A name with a line break stays on one line in both renderings."""

    def multi(data: Any, context: WorkflowContext) -> Any:
        return data

    multi.__qualname__ = "two\nlines\t here"
    workflow = ConditionalPrimitive(is_big, a, None)
    routed = RouterPrimitive({"x\ny": LambdaPrimitive(multi)}, pick)
    assert routed.describe() == (
        "Router pick (routes x y)\n└── route x y: Lambda two lines here"
    )
    assert len(routed.to_mermaid().split("\n")) == 4
    assert workflow.describe() == "Conditional is_big\n└── then: Mock 'a'"


class Custom(WorkflowPrimitive[Any, Any]):
    """A user primitive the library knows nothing about."""

    async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
        """Return the input."""
        return input_data


def test_user_subclass_is_a_leaf_named_by_its_class() -> None:
    """A user's own primitive, and a run-time subclass of a library one, show as leaves named by their class."""

    class Patched(RetryPrimitive[Any, Any]):  # type: ignore[misc]
        async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
            return await super().execute(input_data, context)

    workflow = Custom() >> Patched(a)
    assert workflow.describe() == (
        "Sequential\n├── Custom\n"
        "└── test_user_subclass_is_a_leaf_named_by_its_class.<locals>.Patched"
    )
    assert Custom().to_mermaid() == 'flowchart TD\n    n0["Custom"]'


def test_same_instance_twice_is_shown_twice() -> None:
    """A primitive used in two places appears at both, with distinct Mermaid nodes."""
    shared = TimeoutPrimitive(a, 1)
    workflow: SequentialPrimitive[Any, Any] = SequentialPrimitive([shared, shared])
    assert workflow.describe() == (
        "Sequential\n├── Timeout 1 s\n│   └── Mock 'a'\n└── Timeout 1 s\n    └── Mock 'a'"
    )
    assert workflow.to_mermaid().count('["Timeout 1 s"]') == 2


def test_cycle_is_marked_not_followed() -> None:
    """A primitive made to contain itself is shown again as a marked leaf instead of recursing forever."""
    loop: SequentialPrimitive[Any, Any] = SequentialPrimitive([a, b])
    loop.primitives = (a, TimeoutPrimitive(loop, 1))
    assert loop.describe() == (
        "Sequential\n"
        "├── Mock 'a'\n"
        "└── Timeout 1 s\n"
        "    └── Sequential (cycle: contains itself, not expanded)"
    )
    assert "(cycle: contains itself, not expanded)" in loop.to_mermaid()


def test_deep_nesting_is_cut_off() -> None:
    """Nesting deeper than 100 levels ends in a marked leaf, far from Python's recursion limit."""
    workflow: WorkflowPrimitive[Any, Any] = a
    for _ in range(300):
        workflow = TimeoutPrimitive(workflow, 1)
    lines = workflow.describe().split("\n")
    assert len(lines) == 101
    assert lines[-1].endswith(
        "└── Timeout 1 s (nested more than 100 deep, not expanded)"
    )
    assert workflow.to_mermaid().count("-->") == 100


async def test_works_inside_a_trio_run() -> None:
    """Inside a trio run, both are plain calls: no checkpoint, nothing awaited."""
    with trio.testing.assert_no_checkpoints():
        assert RetryPrimitive(a).describe().startswith("Retry 3×")
        assert a.to_mermaid() == "flowchart TD\n    n0[\"Mock 'a'\"]"


def test_runs_no_user_code() -> None:
    """Describing a workflow calls none of its functions and records no mock calls."""
    calls: list[object] = []

    def spy(data: Any, context: WorkflowContext) -> bool:
        calls.append(data)
        return True

    workflow = ConditionalPrimitive(spy, LambdaPrimitive(spy), a)
    workflow.describe()
    workflow.to_mermaid()
    assert calls == []
    assert a.call_count == 0


UNESCAPE = re.compile(r"#(\d+);")
UNSAFE = set('"<>|[]{}`&')


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        st.characters(
            codec="utf-8", categories=["L", "N", "P", "S"], include_characters=" "
        )
    )
)
def test_mermaid_label_round_trips(name: str) -> None:
    """Any printable name reaches a Mermaid label with no unsafe character, and its entity codes decode back to it."""

    def func(data: Any, context: WorkflowContext) -> Any:
        return data

    func.__qualname__ = name + "!"  # never ends in "<lambda>"
    label_line = LambdaPrimitive(func).to_mermaid().split("\n")[1]
    match = re.fullmatch(r'    n0\["(.*)"\]', label_line)
    assert match is not None
    escaped = match[1]
    assert not UNSAFE & set(escaped)
    assert all(m.start() == i for i, m in _entity_positions(escaped))
    decoded = UNESCAPE.sub(lambda m: chr(int(m[1])), escaped)
    assert decoded == f"Lambda {name}!"


def _entity_positions(escaped: str) -> list[tuple[int, re.Match[str]]]:
    """Each '#' of *escaped* paired with the entity code that must start there."""
    out: list[tuple[int, re.Match[str]]] = []
    for index, char in enumerate(escaped):
        if char == "#":
            match = UNESCAPE.match(escaped, index)
            assert match is not None, f"bare '#' at {index} in {escaped!r}"
            out.append((index, match))
    return out


if __name__ == "__main__":  # rewrite the doc's generated blocks
    DOC.write_text(render_doc(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    sys.stdout.write(f"updated {DOC}\n")
