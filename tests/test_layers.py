"""The package's layer map holds: the import-linter contract of pyproject.toml, and no import cycle between
modules, function-local imports included (grimp reads every import statement, wherever it stands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def import_cycles(package: str) -> list[set[str]]:
    """Strongly connected groups of more than one module in ``package``'s import graph (Tarjan's algorithm)."""
    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = {stack.pop()}
            while module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                found.append(group)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges)))
    for module in edges:
        if module not in index:
            visit(module)
    return found


def test_layer_contract_is_kept() -> None:
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_no_import_cycle_counting_function_local_imports() -> None:
    assert import_cycles("cnnattn") == []


def test_the_cycle_scan_sees_function_local_imports(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def late():\n    from . import high\n")  # hidden inside a function
    (package / "high.py").write_text("from . import low\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclic") == [{"cyclic.low", "cyclic.high"}]


def test_importing_cnnattn_keeps_the_matplotlib_backend() -> None:
    """A notebook's backend survives ``import cnnattn`` and drawing a plot (figures are drawn outside pyplot)."""
    code = (
        "import matplotlib; matplotlib.use('svg'); import cnnattn, cnnattn.analysis.plots, cnnattn.visualize.show;"
        "import matplotlib.pyplot as plt; from cnnattn.analysis.plots import new_figure, save_figure;"
        "import tempfile, os; fig = new_figure(2, 2); fig.subplots().plot([0, 1]);"
        "save_figure(fig, os.path.join(tempfile.mkdtemp(), 'x.png'));"
        "print(matplotlib.get_backend(), len(plt.get_fignums()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["svg", "0"]
