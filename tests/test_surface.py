"""The public surface: ``__all__``, module names, ``py.typed``, and what every export promises."""

from __future__ import annotations

import copy
import enum
import importlib.metadata
import importlib.resources
import pathlib
import pickle
import pkgutil
import subprocess
import sys
import types

import pytest

import trio_primitives
from trio_primitives import WorkflowContext, WorkflowPrimitive
from trio_primitives._base import Primitive

CORE = {
    "LambdaPrimitive",
    "ParallelPrimitive",
    "SequentialPrimitive",
    "WorkflowContext",
    "WorkflowPrimitive",
}
PUBLIC_SUBMODULES = {"testing", "otel"}
EXPORTS = [getattr(trio_primitives, name) for name in trio_primitives.__all__]


def test_core_names_are_exported() -> None:
    """The core of the contract's table is importable from the package."""
    assert set(trio_primitives.__all__) >= CORE


def test_all_is_sorted_and_unique() -> None:
    """``__all__`` is sorted and lists each name once."""
    names = trio_primitives.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_all_is_exactly_the_public_names() -> None:
    """Every public attribute of the package (bar submodules and __version__) is in ``__all__``, and nothing else."""
    public = {
        name
        for name, value in vars(trio_primitives).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(trio_primitives.__all__)


def test_star_import_gives_all() -> None:
    """``from trio_primitives import *`` binds exactly the names of ``__all__``."""
    namespace: dict[str, object] = {}
    exec("from trio_primitives import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(trio_primitives.__all__)


def test_only_private_or_documented_submodules() -> None:
    """Implementation modules are private; the only public submodules are testing and otel."""
    names = {module.name for module in pkgutil.iter_modules(trio_primitives.__path__)}
    public = {name for name in names if not name.startswith("_")}
    assert public <= PUBLIC_SUBMODULES


@pytest.mark.parametrize("name", trio_primitives.__all__)
def test_exports_say_they_come_from_the_package(name: str) -> None:
    """Every export's ``__module__`` is trio_primitives, so reprs, tracebacks and pickle name it there."""
    obj = getattr(trio_primitives, name)
    assert obj.__module__ == "trio_primitives"
    if isinstance(obj, enum.EnumMeta):
        assert repr(obj) == f"<enum '{name}'>"
        assert pickle.loads(pickle.dumps(next(iter(obj)))) is next(iter(obj))
    elif isinstance(obj, type):
        assert repr(obj) == f"<class 'trio_primitives.{name}'>"


@pytest.mark.parametrize("name", trio_primitives.__all__)
def test_exports_are_documented(name: str) -> None:
    """Every export has a docstring."""
    assert (getattr(trio_primitives, name).__doc__ or "").strip()


def test_py_typed_is_shipped() -> None:
    """The package carries the PEP 561 marker, so type checkers use its annotations."""
    assert importlib.resources.files("trio_primitives").joinpath("py.typed").is_file()


def test_version_matches_the_distribution() -> None:
    """``__version__`` is the installed distribution's version."""
    assert trio_primitives.__version__ == importlib.metadata.version("trio_primitives")


@pytest.mark.parametrize(
    "cls",
    [
        obj
        for obj in EXPORTS
        if isinstance(obj, type)
        and issubclass(obj, WorkflowPrimitive)
        and obj is not WorkflowPrimitive
    ],
    ids=lambda cls: cls.__name__,
)
def test_concrete_primitives_are_final_and_dispatch_to_their_run(cls: type) -> None:
    """Exported primitives are typing.final, and execute reaches the _run of their own class body."""
    assert getattr(cls, "__final__", False)
    assert issubclass(cls, Primitive)
    assert "_run" in vars(cls)
    assert vars(cls)["_engine_run"] is vars(cls)["_run"]


def test_workflow_primitive_is_an_abstract_generic_base() -> None:
    """WorkflowPrimitive is subscriptable and requires execute."""
    assert WorkflowPrimitive[int, str] is not None
    assert WorkflowPrimitive.__abstractmethods__ == frozenset({"execute"})


def test_context_pickles_and_copies() -> None:
    """A context survives pickle and deepcopy with its fields (it may cross process boundaries)."""
    ctx = WorkflowContext.root("wf", state={"k": [1]}, tags={"t": "v"})
    for clone in (pickle.loads(pickle.dumps(ctx)), copy.deepcopy(ctx)):
        assert type(clone) is WorkflowContext
        assert clone.state == {"k": [1]}
        assert clone.trace_id == ctx.trace_id
        assert clone.correlation_id == ctx.correlation_id


def test_import_has_no_side_effects(tmp_path: pathlib.Path) -> None:
    """Importing the package writes no file, adds no log handler, patches nothing and loads no asyncio."""
    code = """
import logging, os, sys, threading
before_files = sorted(os.listdir("."))
root = logging.getLogger()
handlers = (list(root.handlers), logging.lastResort)
threads = threading.active_count()
import trio_primitives, trio_primitives.testing
assert sorted(os.listdir(".")) == before_files, "files appeared"
assert (list(root.handlers), logging.lastResort) == handlers, "logging changed"
assert not any(logging.getLogger(n).handlers for n in logging.root.manager.loggerDict), "handlers added"
assert threading.active_count() == threads, "a thread started"
assert "asyncio" not in sys.modules, "asyncio imported"
assert "trio_asyncio" not in sys.modules
assert "opentelemetry" not in sys.modules
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.stdout, done.stderr) == ("ok\n", "")
