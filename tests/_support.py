"""Helpers shared by the test modules: running and importing the example scripts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def run_script(path: Path) -> subprocess.CompletedProcess[str]:
    """Run *path* as a script from the repository root, warnings as errors."""
    return subprocess.run(
        [sys.executable, "-W", "error", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load_module(path: Path, name: str) -> ModuleType:
    """Import *path* as a fresh module called *name*."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
