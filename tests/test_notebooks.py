"""Every course notebook runs top to bottom on a fresh kernel with the toy defaults.

The notebooks assert their own invariants (shapes, code ranges, AUC above chance, ablation
moving the metric the right way), so executing them is the test. Each also runs once with
SEED=1 and another task, so that among them every task runs by default; the full task x
notebook grid is the slow test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
COURSE = [path.stem for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
TASKS = ("ioi", "greater-than", "docstring", "induction")
#: Notebooks whose TASK parameter switches the whole pipeline to another task.
TASK_NOTEBOOKS = ("00_quickstart", "03_discretisation", "04_scoring", "05_ablation_validation")
#: The TASK each task notebook's parameters cell sets.
DEFAULT_TASKS = {
    "00_quickstart": "ioi",
    "03_discretisation": "ioi",
    "04_scoring": "ioi",
    "05_ablation_validation": "ioi",
}
#: The default run: other tasks (and seed 1), so that every task runs somewhere. Induction goes
#: to 00 and 05, where on toy-4l the method's AUC and the known circuit are no better than chance
#: and the notebooks must say so and go on; 08 runs on induction too: its size-only circuit
#: heads are what the notebook's diagnostic and level codes are about. 09 runs on greater-than,
#: whose answer variable (the year) has many values and whose template few.
TASK_VARIANTS = (
    ("00_quickstart", "induction"),
    ("03_discretisation", "greater-than"),
    ("04_scoring", "docstring"),
    ("05_ablation_validation", "induction"),
    ("08_when_it_works", "induction"),
    ("09_supervised_dictionaries", "greater-than"),
)


#: Seconds a single cell may run before the kernel is taken to have hung.
CELL_TIMEOUT_S = 300


def execute_notebook(stem: str, output: Path, **parameters) -> Path:
    """Run ``notebooks/<stem>.ipynb`` with papermill (kernel python3, offline) into ``output``."""
    import papermill

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    # The toy model's matrices are tiny: a second thread only adds synchronisation, and on a
    # busy 2-core CI runner it made SAE training ~20x slower (measured).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    def run() -> None:
        # shutdown_kernel="immediate": once the last cell has run, kill the kernel instead of
        # asking it to shut down. A polite shutdown was seen to hang for minutes here, the
        # kernel idle and nbclient waiting in its cleanup with no timeout.
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{stem}.ipynb"), str(output), parameters=parameters, kernel_name="python3",
            cwd=str(NOTEBOOKS), progress_bar=False, log_output=False, execution_timeout=CELL_TIMEOUT_S,
            shutdown_kernel="immediate",
        )

    try:
        run()
    except TimeoutError:
        # A cell of these notebooks takes seconds; one that runs for minutes is a kernel that
        # stopped answering, so run it once more.
        run()
    return output


#: Every (notebook, parameters) run of this session, shared by every module that uses
#: ``notebook_runner`` (a fixture imported into two modules gets two instances; this does not).
_RUNS: dict[tuple, Path | BaseException] = {}


@pytest.fixture(scope="session")
def notebook_runner(tmp_path_factory):
    """``run(stem, **parameters)`` → executed copy; each (notebook, parameters) runs once per session.

    Shared with tests/test_docs.py, which renders the executed copies instead of running the
    notebooks a second time.
    """

    def run(stem: str, **parameters) -> Path:
        key = (stem, tuple(sorted(parameters.items())))
        if key not in _RUNS:
            folder = tmp_path_factory.mktemp("executed-" + "-".join(f"{k}={v}" for k, v in key[1]) if key[1] else "executed")
            try:
                _RUNS[key] = execute_notebook(stem, folder / f"{stem}.ipynb", **parameters)
            except Exception as err:  # remembered, so a second caller sees the same failure
                _RUNS[key] = err
        if isinstance(_RUNS[key], BaseException):
            raise _RUNS[key]
        return _RUNS[key]

    return run


def _assert_executed(path: Path) -> None:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.execution_count is not None for cell in code_cells)
    errors = [out for cell in code_cells for out in cell.outputs if out.output_type == "error"]
    assert not errors


def test_the_course_is_complete():
    assert COURSE == [
        "00_quickstart", "01_hooks", "02_sae_training", "03_discretisation", "04_scoring",
        "05_ablation_validation", "06_your_own_task", *[s for s in COURSE if s[:2] > "06"],
    ]


@pytest.mark.notebooks
@pytest.mark.parametrize("stem", COURSE)
def test_notebook_runs_with_its_defaults(stem, notebook_runner):
    _assert_executed(notebook_runner(stem))


@pytest.mark.notebooks
@pytest.mark.parametrize(("stem", "task"), TASK_VARIANTS)
def test_notebook_runs_with_another_task_and_seed(stem, task, notebook_runner):
    _assert_executed(notebook_runner(stem, TASK=task, SEED=1))


@pytest.mark.notebooks
def test_the_sae_parameter_switches_to_a_signed_architecture(notebook_runner):
    """abstopk's signed codes (index + d_sae for negative latents) go through the codes notebook."""
    _assert_executed(notebook_runner("03_discretisation", SAE="abstopk"))


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("stem", TASK_NOTEBOOKS)
def test_task_notebook_runs_with_another_architecture(stem, notebook_runner):
    _assert_executed(notebook_runner(stem, SAE="topk"))


def test_every_task_runs_in_the_default_notebook_tests():
    assert {task for _, task in TASK_VARIANTS} | set(DEFAULT_TASKS.values()) == set(TASKS)
    assert set(DEFAULT_TASKS) == set(TASK_NOTEBOOKS)


@pytest.mark.parametrize(("stem", "task"), DEFAULT_TASKS.items())
def test_default_tasks_match_the_parameters_cells(stem, task):
    source = (NOTEBOOKS / "source" / f"{stem}.py").read_text()
    assert f'\nTASK = "{task}"' in source


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("stem", COURSE)
def test_notebook_runs_with_seed_1(stem, notebook_runner):
    _assert_executed(notebook_runner(stem, SEED=1))


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize(
    ("stem", "task"),
    [(stem, task) for stem in TASK_NOTEBOOKS for task in TASKS],
)
def test_task_notebook_runs_with_every_task(stem, task, notebook_runner):
    _assert_executed(notebook_runner(stem, TASK=task))
