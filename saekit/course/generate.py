"""One source per notebook, two notebooks out: the solution and the exercise version.

A course notebook is written once, as a jupytext "percent" script in ``notebooks/source/``
(plain Python, easy to review and diff). Inside an exercise cell the model answer sits between
two marker lines::

    def masked_mean(values, lengths):
        # BEGIN SOLUTION
        ...
        # END SOLUTION

[`build`][saekit.course.generate.build] writes ``notebooks/NN_name.ipynb`` with the markers removed (the solution, run
by CI) and ``notebooks/exercises/NN_name.ipynb`` with each marked block replaced by a stub that
raises ``NotImplementedError`` (what a learner fills in), followed by a commented-out
``name = use_solution("check")`` line that skips the exercise with the reference solution.
Both are written without outputs and with fixed cell ids, so regenerating an unchanged source gives byte-identical files and
``python -m saekit.course --check`` can tell whether the committed notebooks are up to date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB_LINES = ("# YOUR CODE HERE", 'raise NotImplementedError("Exercise: replace this line with your code.")')
_MARKER = re.compile(r"^(?P<indent>[ \t]*)# (?P<kind>BEGIN|END) SOLUTION[ \t]*$")
SKIP_HINT = "# Stuck? Uncomment the next line to take the reference solution and go on:"

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: the cell in both versions and the check cell after it."""

    notebook: str
    index: int
    solution_code: str
    stub_code: str
    check_code: str
    skip_call: str


def _split_solution(source: str, where: str) -> tuple[str, str]:
    """``source`` as (solution, stub): markers removed, or marked blocks replaced by a stub."""
    solution, stub, inside, indent = [], [], False, ""
    for number, line in enumerate(source.splitlines(), start=1):
        marker = _MARKER.match(line)
        if marker and marker["kind"] == "BEGIN":
            if inside:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution block.")
            inside, indent = True, marker["indent"]
            stub.extend(indent + stub_line for stub_line in STUB_LINES)
        elif marker:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END} without a {BEGIN} before it.")
            inside = False
        else:
            solution.append(line)
            if not inside:
                stub.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} is never closed by {END}.")
    return "\n".join(solution), "\n".join(stub)


def _check_cell(cells: list, number: int, where: str) -> str:
    """The check of the exercise in code cell ``number``: the next code cell calling ``checks.``."""
    check = next((cell.source for cell in cells[number + 1:] if "checks." in cell.source), None)
    if check is None:
        raise ValueError(f"{where}: exercise cell {number} has no checks.* cell after it.")
    return check


def _skip_call(exercise_code: str, check_code: str, where: str) -> str:
    """``function = use_solution("check")``: the line that replaces the exercise's function."""
    function = re.search(r"^def (\w+)\(", exercise_code, re.MULTILINE)
    check = re.search(r"checks\.(\w+)\(", check_code)
    if function is None or check is None:
        raise ValueError(f"{where}: an exercise cell defines a function and its check cell calls checks.<name>(...).")
    return f'{function[1]} = use_solution("{check[1]}")'


def _read_source(path: Path):
    import jupytext

    return jupytext.read(path, fmt="py:percent")


def _clean(notebook, stem: str, version: str):
    """Deterministic metadata and ids, no outputs, kernel python3."""
    notebook.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        "saekit": {"source": f"source/{stem}.py", "version": version},
    }
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number:03d}"
        cell.metadata = {key: value for key, value in cell.metadata.items() if key == "tags"}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def render(source_path: Path) -> dict[str, str]:
    """The solution and exercise notebooks of one source, as ipynb text keyed by version."""
    import copy

    import nbformat

    stem = source_path.stem
    texts = {}
    for version in ("solution", "exercise"):
        notebook = copy.deepcopy(_read_source(source_path))
        code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        for number, cell in enumerate(code_cells):
            where = f"{source_path.name}, code cell {number}"
            solution, stub = _split_solution(cell.source, where)
            if version == "exercise" and BEGIN in cell.source:
                skip = _skip_call(cell.source, _check_cell(code_cells, number, where), where)
                stub = f"{stub}\n\n\n{SKIP_HINT}\n# {skip}"
            cell.source = solution if version == "solution" else stub
        texts[version] = nbformat.writes(_clean(notebook, stem, version)) + "\n"
    return texts


def targets(notebooks_dir: Path, stem: str) -> dict[str, Path]:
    """Where the two versions of notebook ``stem`` are written."""
    return {
        "solution": notebooks_dir / f"{stem}.ipynb",
        "exercise": notebooks_dir / "exercises" / f"{stem}.ipynb",
    }


def sources(notebooks_dir: Path) -> list[Path]:
    """The notebook sources, in course order."""
    return sorted((notebooks_dir / "source").glob("[0-9][0-9]_*.py"))


def build(notebooks_dir: Path, check: bool = False) -> list[Path]:
    """Write (or with ``check``, only compare) every generated notebook; returns stale paths."""
    stale = []
    for source_path in sources(notebooks_dir):
        paths = targets(notebooks_dir, source_path.stem)
        for version, text in render(source_path).items():
            path = paths[version]
            if path.is_file() and path.read_text() == text:
                continue
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return stale


def exercises(source_path: Path) -> list[Exercise]:
    """Every exercise of a source: solution and stub of its cell, and the check cell after it.

    The check cell is the next code cell that calls ``checks.``; a check must be able to run
    on the exercise cell alone (exercise cells define functions and import what they use).
    """
    cells = [cell for cell in _read_source(source_path).cells if cell.cell_type == "code"]
    found = []
    for number, cell in enumerate(cells):
        if BEGIN not in cell.source:
            continue
        check = _check_cell(cells, number, source_path.name)
        solution, stub = _split_solution(cell.source, source_path.name)
        skip = _skip_call(cell.source, check, source_path.name)
        found.append(Exercise(source_path.stem, len(found) + 1, solution, stub, check, skip))
    return found
