"""The README's Python example runs as written (in a fresh interpreter, so its registrations stay there)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_example() -> None:
    assert _python_blocks(), "README.md must contain a ```python example"


def test_readme_python_example_runs() -> None:
    code = "\n".join(_python_blocks())
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
