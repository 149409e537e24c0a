"""The README's example is real code: it runs and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs() -> None:
    """The first Python block of the README runs under -W error and prints its result."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks, "the README has no Python example"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", blocks[0]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "trio: 3 hits\n"
    assert done.stderr == ""


def test_readme_quick_start_names_files_that_exist() -> None:
    """The quick-start commands run the benchmark and files that exist in the repository."""
    text = README.read_text()
    for path in ("docs/examples/model_evaluation.py", "scripts/check.py"):
        assert f".venv/bin/python {path}" in text
        assert (README.parent / path).is_file()
    assert (
        '.venv/bin/pip install -q -e ".[bench]" && .venv/bin/python -m benchmarks --quick'
        in text
    )
    assert (README.parent / "benchmarks" / "__main__.py").is_file()
