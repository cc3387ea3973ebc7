"""The documentation site builds in strict mode (a broken link or a missing page fails it), with
the course notebooks rendered from the copies the notebook tests executed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_notebooks import COURSE, notebook_runner  # noqa: F401  (the shared session fixture)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: A Sphinx cross-reference role, in a source or as mkdocstrings prints it (literally).
RAW_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj):(?:`|<code>)")


def test_docstrings_use_markdown_cross_references_not_sphinx_roles():
    """mkdocstrings renders docstrings as Markdown: write [`name`][saekit.module.name] or `name`."""
    sources = [*(ROOT / "saekit").rglob("*.py"), *DOCS.rglob("*.md")]
    with_roles = {path.relative_to(ROOT).as_posix() for path in sources if RAW_ROLE.search(path.read_text())}
    assert not with_roles, f"convert the roles in {sorted(with_roles)}"


class _Loader(yaml.SafeLoader):
    """Reads mkdocs.yml, whose !!python/name tags (emoji, superfences) need no resolving here."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix)


def _nav_paths(entries) -> list[str]:
    paths = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        paths.extend(_nav_paths(value) if isinstance(value, list) else [value])
    return paths


def test_every_page_and_notebook_is_in_the_navigation():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
    nav = set(_nav_paths(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages <= nav, f"pages missing from mkdocs.yml nav: {sorted(pages - nav)}"
    assert {f"notebooks/{stem}.ipynb" for stem in COURSE} <= nav


@pytest.mark.docs
def test_docs_build_strictly_with_executed_notebooks(tmp_path, notebook_runner):  # noqa: F811
    executed = tmp_path / "executed" / "notebooks"  # the hook wants a folder named notebooks
    executed.mkdir(parents=True)
    for stem in COURSE:
        try:
            shutil.copy(notebook_runner(stem), executed / f"{stem}.ipynb")
        except Exception:  # noqa: S112 - rendered without outputs; test_notebooks reports the failure
            continue
    site = tmp_path / "site"
    tree_before = _tree_status()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        env={**os.environ, "SAEKIT_NOTEBOOKS_DIR": str(executed), "HF_HUB_OFFLINE": "1", "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert _tree_status() == tree_before, "the docs build wrote into the working tree"
    quickstart = (site / "notebooks" / "00_quickstart" / "index.html").read_text()
    assert "data:image/png;base64" in quickstart, "the quickstart page has no executed figures"
    assert "stylesheets/notebooks.css" in quickstart, "notebook pages need the stylesheet that wraps long code lines"
    assert "codes_from_latents" in (site / "api" / "codes" / "index.html").read_text()
    assert {p.name for p in (site / "figures").glob("*.png")} == {"scores.png", "codes.png", "roc.png"}
    raw_roles = {page.relative_to(site).as_posix(): RAW_ROLE.findall(page.read_text()) for page in (site / "api").rglob("*.html")}
    assert not {page: roles for page, roles in raw_roles.items() if roles}, "Sphinx roles render literally"


def _tree_status() -> str:
    """Every changed, untracked and ignored path of the working tree (build outputs included)."""
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_papermill_list_parameters_take_the_documented_yaml_form(tmp_path):
    """The teaching guide's `-y` example gives notebook 07 a list of architectures; `-p` gives a string."""
    from saekit.sae import ARCHITECTURES

    guide = (DOCS / "teaching-guide.md").read_text()
    yaml_argument = re.search(r'07_sae_architectures\.ipynb out\.ipynb -y "([^"]+)"', guide)
    assert yaml_argument, "the teaching guide should show the -y form for ARCHITECTURES"

    def injected(*arguments: str):
        output = tmp_path / "out.ipynb"
        subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "07_sae_architectures.ipynb"),
                        str(output), "--prepare-only", *arguments], check=True, capture_output=True, cwd=tmp_path)
        cell = next(c for c in json.loads(output.read_text())["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
        namespace: dict = {}
        exec("".join(cell["source"]), namespace)  # noqa: S102 - papermill's generated assignment
        return namespace["ARCHITECTURES"]

    chosen = injected("-y", yaml_argument[1])
    assert isinstance(chosen, list) and len(chosen) >= 2 and set(chosen) <= set(ARCHITECTURES)
    assert injected("-p", "ARCHITECTURES", "relu,topk") == "relu,topk"
