"""The documentation: its generated tables equal what docs/results gives, the site builds with zero warnings, and
no page speaks of how the work went."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnattn.analysis import report

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(ROOT.glob("configs/*"))]


def test_generated_tables_equal_what_the_results_give() -> None:
    stale = [page.name for page, text in report.generate(DOCS).items() if page.read_text() != text]
    assert not stale, f"run `python -m cnnattn.analysis.report`: {stale} differ from docs/results"
    assert report.main(["--docs", str(DOCS), "--check"]) == 0


def test_every_renderer_is_used_and_a_stale_page_is_found(tmp_path: Path) -> None:
    blocks = [m for page in DOCS.glob("*.md") for m in report.BLOCK.finditer(page.read_text())]
    used = {m.group("name").partition(":")[0] for m in blocks}
    assert used == set(report.RENDERERS)
    shutil.copytree(DOCS / "results", tmp_path / "results")
    page = tmp_path / "benchmarks.md"
    page.write_text((DOCS / "benchmarks.md").read_text().replace("| das ", "| DAS? ", 1))
    assert report.main(["--docs", str(tmp_path), "--check"]) == 1
    assert report.main(["--docs", str(tmp_path)]) == 0 and page.read_text() == (DOCS / "benchmarks.md").read_text()
    with pytest.raises(ValueError, match="unknown generated table 'nope'"):
        report.render_block("nope", DOCS / "results")


# How the work went belongs in commit messages: internal rounds, tracker numbers, a specification users lack,
# data paths of the development machine, withdrawn attempts.
HISTORY = re.compile(r"\bsession\b|\bSPEC\b|#\d+\b|\.\./shared|/work/|withdrawn|\brejected\b", re.I)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_speaks_of_the_development_process(page: Path) -> None:
    text = re.sub(r"onnxruntime CPU session|InferenceSession|CPU session", "", page.read_text())
    found = [line.strip()[:100] for line in text.splitlines() if HISTORY.search(line)]
    assert not found, found


def test_readme_lines_stay_short() -> None:
    long = [i + 1 for i, line in enumerate((ROOT / "README.md").read_text().splitlines()) if len(line) > 250]
    assert not long, f"README.md lines over 250 characters: {long}"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason='pip install -e ".[docs]"')
def test_the_site_builds_strictly_with_the_api_and_cli_references(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "api" / "cnnattn" / "index.html").read_text()
    for name in ("cnnattn.attach", "cnnattn.create_model", "cnnattn.create_detector"):
        assert f'id="{name}"' in api
    assert "cnnattn.capture" in api and "cnnattn.profile" in api
    attention = (tmp_path / "api" / "attention" / "index.html").read_text()
    for name in ("DASGate", "AWConv2d", "ExplicitAttentionConv2d"):
        assert f'id="cnnattn.attention.{name}"' in attention
    assert 'id="cnnattn.ops.deform_conv2d"' in (tmp_path / "api" / "ops" / "index.html").read_text()
    cli = (tmp_path / "cli" / "index.html").read_text()
    assert all(f"cnnattn {command}" in cli for command in ("train", "compare", "export", "timm"))
