"""What the README shows runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"no python block under {heading!r}"
    return found.group(1)


def test_the_python_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_block("Using the engine from Python"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    first, *steps = done.stdout.splitlines()
    assert first.startswith("succeeded {'department': 'operations', 'amount_eur': 1250.0")
    assert [line.split()[:4] for line in steps[1:]] == [
        ["0", "extract-invoice", "1.0.0", "completed"],
        ["1", "check-budget", "1.0.0", "completed"],
    ]
    assert (tmp_path / "podium.db").is_file()
