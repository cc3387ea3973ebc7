"""The course's single-source tooling: generated notebooks are up to date, every exercise check
fails on the stub and passes on the solution, and checks recognise the usual mistakes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from saekit.course import ExerciseFailed, checks
from saekit.course.generate import build, exercises, render, sources

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sources(NOTEBOOKS)
EXERCISES = [exercise for source in SOURCES for exercise in exercises(source)]


def test_the_course_has_its_notebooks_in_order():
    stems = [source.stem for source in SOURCES]
    assert stems[:7] == [
        "00_quickstart", "01_hooks", "02_sae_training", "03_discretisation", "04_scoring",
        "05_ablation_validation", "06_your_own_task",
    ][: len(stems[:7])]
    assert len(stems) >= 7


def test_committed_notebooks_are_generated_from_their_sources():
    stale = build(NOTEBOOKS, check=True)
    assert not stale, f"regenerate with `python -m saekit.course`: {[str(p) for p in stale]}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_notebook_states_objectives_time_and_parameters(source):
    notebook = json.loads(render(source)["solution"])
    intro = "".join(notebook["cells"][0]["source"])
    assert "Learning objectives" in intro and "Estimated time" in intro
    parameter_cells = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameter_cells) == 1
    parameters = "".join(parameter_cells[0]["source"])
    for name in ("MODEL", "TASK", "SEED"):
        assert f"{name} = " in parameters
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert all(not cell.get("outputs") for cell in notebook["cells"])


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_exercise_version_has_stubs_where_the_solution_has_code(source):
    versions = {name: json.loads(text) for name, text in render(source).items()}
    solution_text = json.dumps(versions["solution"])
    exercise_text = json.dumps(versions["exercise"])
    assert "BEGIN SOLUTION" not in solution_text and "BEGIN SOLUTION" not in exercise_text
    assert "NotImplementedError" not in solution_text
    assert exercise_text.count("YOUR CODE HERE") == len(exercises(source)) >= 1
    assert len(versions["solution"]["cells"]) == len(versions["exercise"]["cells"])


def _run_exercise(code: str, check: str) -> str:
    namespace: dict = {}
    exec("from saekit.course import checks", namespace)  # noqa: S102 - our own course sources
    exec(code, namespace)  # noqa: S102
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(check, namespace)  # noqa: S102
    return printed.getvalue()


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.notebook}-{e.index}")
def test_check_fails_on_the_stub_with_a_hint(exercise):
    with pytest.raises(ExerciseFailed, match="not implemented yet"):
        _run_exercise(exercise.stub_code, exercise.check_code)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.notebook}-{e.index}")
def test_check_passes_on_the_solution(exercise):
    assert "all checks passed" in _run_exercise(exercise.solution_code, exercise.check_code)


# The usual mistakes each get their own hint, not just "wrong".
MISTAKES = [
    (checks.masked_position_mean, lambda values, lengths: values.mean(1), "padding"),
    (checks.masked_position_mean,
     lambda values, lengths: (values * (torch.arange(values.shape[1]) < lengths[:, None])[..., None, None]).sum(1)
     / values.shape[1], "divide by lengths"),
    (checks.explained_variance, lambda x, x_hat: 1 - (x - x_hat).pow(2).sum() / x.pow(2).sum(), "about zero"),
    (checks.codes_from_latents, lambda latents: latents.argmax(-1), "NO_CODE"),
    (checks.head_writes, lambda z, w_o: torch.einsum("bphd,hdm->bpm", z, w_o), "summed over heads"),
    (checks.top_k_heads, lambda scores, k: {divmod(int(i), scores.shape[1]) for i in scores.flatten().argsort()[:k]},
     "lowest"),
    (checks.mean_ablate, lambda z, mean_z, keep: torch.where(~keep[:, None], z, mean_z), "OUTSIDE"),
    (checks.precision_recall_at_k, lambda scores, is_true, k: (2 / 3, 0.5), "swapped"),
    (checks.topk_activation, lambda pre, k: pre.relu(), "all but the k largest"),
    (checks.topk_activation,
     lambda pre, k: torch.zeros_like(pre).scatter(-1, pre.topk(k).indices, pre.topk(k).values), "ReLU"),
    (checks.signed_codes, lambda latents: latents.abs().argmax(-1).masked_fill((latents == 0).all(-1), -1),
     "sign is lost"),
    (checks.head_d_prime, lambda p, n: (p.mean(0) - n.mean(0)).norm(), "pooled within-class spread"),
    (checks.head_d_prime, lambda p, n: (p.mean(0) - n.mean(0)).norm() / ((p.var(0) + n.var(0)).sum() / 2).sqrt(),
     "n − 1"),
    (checks.head_d_prime,
     lambda p, n: (p.mean(0) - n.mean(0)).norm() / ((p.var(0, correction=0) + n.var(0, correction=0)).mean() / 2).sqrt(),
     "their sum"),
    (checks.head_d_prime,
     lambda p, n: (p.mean(0) - n.mean(0)).norm()
     / ((p.var(0, correction=0).sum().sqrt() + n.var(0, correction=0).sum().sqrt()) / 2), "standard deviations"),
]


@pytest.mark.parametrize(("check", "wrong", "hint"), MISTAKES, ids=lambda v: getattr(v, "__name__", ""))
def test_checks_name_the_mistake(check, wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check(wrong)


def test_a_crashing_answer_is_reported_with_its_error():
    def crashes(values, lengths):
        return values[99]

    with pytest.raises(ExerciseFailed, match="IndexError"):
        checks.masked_position_mean(crashes)


def test_generator_rejects_unbalanced_markers(tmp_path):
    (tmp_path / "source").mkdir()
    source = tmp_path / "source" / "00_broken.py"
    source.write_text("# %%\ndef f():\n    # BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(ValueError, match="never closed"):
        render(source)


def test_generator_writes_both_versions_and_then_reports_nothing_stale(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "00_tiny.py").write_text(
        '# %% [markdown]\n# # Tiny\n\n# %%\ndef f(x):\n    """Double."""\n'
        "    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"
    )
    written = build(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "00_tiny.ipynb", "exercises/00_tiny.ipynb"
    ]
    exercise = json.loads((tmp_path / "exercises" / "00_tiny.ipynb").read_text())
    code = "".join(exercise["cells"][1]["source"])
    assert '    """Double."""\n    # YOUR CODE HERE\n    raise NotImplementedError' in code
    assert "return 2 * x" not in code
    assert build(tmp_path, check=True) == []


def test_teaching_guide_lists_every_exercise_check():
    import re

    guide = (NOTEBOOKS.parent / "docs" / "teaching-guide.md").read_text()
    used = {match for exercise in EXERCISES for match in re.findall(r"checks\.(\w+)\(", exercise.check_code)}
    missing = sorted(name for name in used if f"checks.{name}" not in guide)
    assert not missing, f"add these exercises to docs/teaching-guide.md: {missing}"
