"""The course's single-source tooling: generated notebooks are up to date, every exercise check
fails on the stub and passes on the solution, and checks recognise the usual mistakes."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch

from saekit.course import ExerciseFailed, checks, use_solution
from saekit.course.generate import SKIP_HINT, build, exercises, render, sources
from saekit.course.solutions import SOLUTIONS
from saekit.errors import CourseError

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
    exec("from saekit.course import checks, use_solution", namespace)  # noqa: S102 - our own course sources
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)  # noqa: S102
        exec(check, namespace)  # noqa: S102
    return printed.getvalue()


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.notebook}-{e.index}")
def test_check_fails_on_the_stub_with_a_hint(exercise):
    with pytest.raises(ExerciseFailed, match="not implemented yet"):
        _run_exercise(exercise.stub_code, exercise.check_code)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.notebook}-{e.index}")
def test_check_passes_on_the_solution(exercise):
    assert "all checks passed" in _run_exercise(exercise.solution_code, exercise.check_code)


def _flat_heads(indices, n_heads):
    return {divmod(int(i), n_heads) for i in indices}


def _picked(indices, is_true, k):
    hits = int(is_true[indices[:k]].sum())
    return hits / k, hits / int(is_true.sum())


def _nonzero_rows(codes, latents):
    return codes.masked_fill((latents == 0).all(-1), -1)


def _signed(latents, best):
    value = latents.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    return value, latents.shape[-1]


#: Plausible wrong answers to every exercise (the mistakes its text and hints warn about), each
#: with the hint its check must give, or None where a generic "wrong values" is enough.
WRONG_ANSWERS = {
    checks.top_k_heads: [
        ("ascending sort", lambda s, k: _flat_heads(s.flatten().argsort()[:k], s.shape[1]), "lowest"),
        ("torch.topk: ties in no set order", lambda s, k: _flat_heads(s.flatten().topk(k).indices, s.shape[1]), "ties"),
        ("ties to the higher index", lambda s, k: _flat_heads(
            s.numel() - 1 - torch.sort(s.flatten().flip(0), descending=True, stable=True).indices[:k], s.shape[1]), "ties"),
        ("divmod by n_layers", lambda s, k: _flat_heads(
            torch.sort(s.flatten(), descending=True, stable=True).indices[:k], s.shape[0]), "wrong heads"),
        ("(head, layer) order", lambda s, k: {(h, l) for l, h in _flat_heads(
            torch.sort(s.flatten(), descending=True, stable=True).indices[:k], s.shape[1])}, None),
        ("a list", lambda s, k: sorted(_flat_heads(torch.sort(s.flatten(), descending=True, stable=True).indices[:k],
                                                   s.shape[1])), "set"),
        ("flat indices", lambda s, k: set(torch.sort(s.flatten(), descending=True, stable=True).indices[:k].tolist()),
         "tuple"),
        ("k + 1 heads", lambda s, k: _flat_heads(torch.sort(s.flatten(), descending=True, stable=True).indices[:k + 1],
                                                 s.shape[1]), "k="),
    ],
    checks.head_writes: [
        ("summed over heads", lambda z, w: torch.einsum("bphd,hdm->bpm", z, w), "summed over heads"),
        ("head 0's W_O for every head", lambda z, w: torch.einsum("bphd,dm->bphm", z, w[0]), "wrong values"),
        ("heads paired in reverse", lambda z, w: torch.einsum("bphd,hdm->bphm", z, w.flip(0)), "wrong values"),
        ("head axis mixed with d_head", lambda z, w: (z.flatten(-2) @ w.flatten(0, 1)).unsqueeze(2).expand(
            -1, -1, z.shape[2], -1), "wrong values"),
    ],
    checks.masked_position_mean: [
        ("mean over padding", lambda v, n: v.mean(1), "padding"),
        ("padding zeroed, divided by seq", lambda v, n: (v * (torch.arange(v.shape[1]) < n[:, None])[..., None, None]).sum(1)
         / v.shape[1], "divide by lengths"),
        ("BOS left out", lambda v, n: (v * ((torch.arange(v.shape[1]) < n[:, None]) & (torch.arange(v.shape[1]) > 0))
                                       [..., None, None]).sum(1) / (n - 1).clamp(min=1)[:, None, None], "BOS"),
        ("one padding position too many", lambda v, n: (v * (torch.arange(v.shape[1]) <= n[:, None])[..., None, None]).sum(1)
         / n[:, None, None], "wrong values"),
    ],
    checks.zero_head_hook: [
        ("zeroes a position", lambda head: lambda z, hook: z.index_fill(1, torch.tensor([head]), 0.0), "position"),
        ("zeroes a d_head component", lambda head: lambda z, hook: z.index_fill(3, torch.tensor([head]), 0.0), "not zero"),
        ("zeroes every head from this one on", lambda head: lambda z, hook: z * (torch.arange(z.shape[2]) < head)[:, None],
         "other heads"),
        ("returns nothing", lambda head: lambda z, hook: z.__setitem__((slice(None), slice(None), head), 0.0), "None"),
        ("returns the head alone", lambda head: lambda z, hook: z[:, :, head] * 0, "shape"),
    ],
    checks.sae_loss: [
        ("L1 averaged over latents", lambda x, xh, f, l1: (xh - x).pow(2).mean() + l1 * f.abs().mean(), "averages over latents"),
        ("no penalty", lambda x, xh, f, l1: (xh - x).pow(2).mean(), "missing"),
        ("Σf without |.|", lambda x, xh, f, l1: (xh - x).pow(2).mean() + l1 * f.sum(-1).mean(), r"\|f\|"),
        ("MSE summed over dimensions", lambda x, xh, f, l1: (xh - x).pow(2).sum(-1).mean() + l1 * f.abs().sum(-1).mean(),
         "over dimensions"),
        ("L2 penalty", lambda x, xh, f, l1: (xh - x).pow(2).mean() + l1 * f.pow(2).sum(-1).mean(), "expected"),
        ("penalty summed over samples", lambda x, xh, f, l1: (xh - x).pow(2).mean() + l1 * f.abs().sum(), "expected"),
        ("a Python float", lambda x, xh, f, l1: float((xh - x).pow(2).mean() + l1 * f.abs().sum(-1).mean()), "tensor"),
    ],
    checks.explained_variance: [
        ("about zero", lambda x, xh: 1 - (x - xh).pow(2).sum() / x.pow(2).sum(), "about zero"),
        ("about the global mean", lambda x, xh: 1 - (x - xh).pow(2).sum() / (x - x.mean()).pow(2).sum(), r"x\.mean\(0\)"),
        ("averaged per feature", lambda x, xh: (1 - (x - xh).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean(),
         "per feature"),
        ("unexplained fraction", lambda x, xh: (x - xh).pow(2).sum() / (x - x.mean(0)).pow(2).sum(), "expected"),
        ("variance of x_hat", lambda x, xh: 1 - (x - xh).pow(2).sum() / (xh - xh.mean(0)).pow(2).sum(), "expected"),
    ],
    checks.codes_from_latents: [
        ("no sentinel", lambda f: f.argmax(-1), "NO_CODE"),
        ("sentinel where any latent is zero", lambda f: f.argmax(-1).masked_fill((f == 0).any(-1), -1), "ALL"),
        ("sentinel d_sae", lambda f: f.argmax(-1).masked_fill((f == 0).all(-1), f.shape[-1]), "NO_CODE"),
        ("argmin", lambda f: _nonzero_rows(f.argmin(-1), f), "wrong codes"),
        ("float codes", lambda f: _nonzero_rows(f.argmax(-1), f).float(), "integer"),
    ],
    checks.node_scores: [
        ("N minus P", lambda p, n: torch.tensor([len(set(n[:, h].tolist()) - set(p[:, h].tolist())) for h in range(p.shape[1])]),
         "P minus N"),
        ("P ∩ N", lambda p, n: torch.tensor([len(set(n[:, h].tolist()) & set(p[:, h].tolist())) for h in range(p.shape[1])]),
         "shared"),
        ("NO_CODE dropped", lambda p, n: torch.tensor([len(set(p[:, h].tolist()) - set(n[:, h].tolist()) - {-1})
                                                       for h in range(p.shape[1])]), "expected"),
        ("positive examples counted, not codes", lambda p, n: torch.tensor(
            [sum(code not in set(n[:, h].tolist()) for code in p[:, h].tolist()) for h in range(p.shape[1])]), "distinct"),
        ("|P| − |N|", lambda p, n: torch.tensor([len(set(p[:, h].tolist())) - len(set(n[:, h].tolist()))
                                                 for h in range(p.shape[1])]), "expected"),
    ],
    checks.precision_recall_at_k: [
        ("swapped", lambda s, t, k: tuple(reversed(_picked(torch.sort(s, descending=True, stable=True).indices, t, k))),
         "swapped"),
        ("ascending sort", lambda s, t, k: _picked(s.argsort(), t, k), "lowest"),
        ("first k by index", lambda s, t, k: _picked(torch.arange(len(s)), t, k), "first k"),
        ("recall over k", lambda s, t, k: (_picked(s.argsort(descending=True), t, k)[0],) * 2, "expected"),
        ("k + 1 heads", lambda s, t, k: _picked(s.argsort(descending=True), t, k + 1), "expected"),
    ],
    checks.normalised_faithfulness: [
        ("not shifted by the empty circuit", lambda c, e, m: c / m, "Subtract"),
        ("clipped to [0, 1]", lambda c, e, m: min(max((c - e) / (m - e), 0.0), 1.0), "clip"),
        ("clipped at 0", lambda c, e, m: max((c - e) / (m - e), 0.0), "clip"),
        ("divided by the model's gap to the circuit", lambda c, e, m: (c - e) / (m - c) if m != c else 0.0, "expected"),
    ],
    checks.mean_ablate: [
        ("circuit replaced", lambda z, mz, keep: torch.where(~keep[:, None], z, mz), "OUTSIDE"),
        ("zeros, not the mean", lambda z, mz, keep: torch.where(keep[:, None], z, 0.0), "mean_z"),
        ("z's own batch mean", lambda z, mz, keep: torch.where(keep[:, None], z, z.mean((0, 1))), "mean_z"),
        ("keep not broadcast", lambda z, mz, keep: torch.where(keep, z, mz), "raised"),
    ],
    checks.third_name_negative: [
        ("every occurrence", lambda p, s, r: p.replace(s, r), "every occurrence"),
        ("first substring", lambda p, s, r: p.replace(s, r, 1), "whole words"),
        ("last mention", lambda p, s, r: " ".join(reversed(" ".join(reversed(p.split(" "))).replace(s, r, 1).split(" "))),
         "expected"),
        ("word list, not a string", lambda p, s, r: p.split(" "), "string"),
    ],
    checks.topk_activation: [
        ("k smallest", lambda pre, k: torch.zeros_like(pre).scatter(-1, pre.topk(k, largest=False).indices,
                                                                     pre.topk(k, largest=False).values), "smallest"),
        ("AbsTopK", lambda pre, k: torch.zeros_like(pre).scatter(-1, pre.abs().topk(k).indices,
                                                                  pre.gather(-1, pre.abs().topk(k).indices)), "AbsTopK"),
        ("no ReLU", lambda pre, k: torch.zeros_like(pre).scatter(-1, pre.topk(k).indices, pre.topk(k).values), "ReLU"),
        ("ReLU only", lambda pre, k: pre.relu(), "all but the k largest"),
        ("top k over the batch", lambda pre, k: torch.zeros_like(pre).scatter(0, pre.topk(k, dim=0).indices,
                                                                               pre.topk(k, dim=0).values.relu()), "wrong values"),
    ],
    checks.signed_codes: [
        ("argmax of f", lambda f: _nonzero_rows(f.argmax(-1), f), "argmax of |f|"),
        ("sign lost", lambda f: _nonzero_rows(f.abs().argmax(-1), f), "sign is lost"),
        ("no sentinel", lambda f: torch.where(_signed(f, f.abs().argmax(-1))[0] < 0,
                                              f.abs().argmax(-1) + f.shape[-1], f.abs().argmax(-1)), "NO_CODE"),
        ("offset on positives", lambda f: _nonzero_rows(torch.where(_signed(f, f.abs().argmax(-1))[0] > 0,
                                                                    f.abs().argmax(-1) + f.shape[-1], f.abs().argmax(-1)), f),
         "wrong codes"),
        ("sentinel where any latent is zero", lambda f: torch.where(
            _signed(f, f.abs().argmax(-1))[0] < 0, f.abs().argmax(-1) + f.shape[-1], f.abs().argmax(-1)
        ).masked_fill((f == 0).any(-1), -1), "wrong codes"),
    ],
    checks.head_d_prime: [
        ("no spread", lambda p, n: (p.mean(0) - n.mean(0)).norm(), "pooled within-class spread"),
        ("n − 1", lambda p, n: (p.mean(0) - n.mean(0)).norm() / ((p.var(0) + n.var(0)).sum() / 2).sqrt(), "n − 1"),
        ("variances averaged over dimensions", lambda p, n: (p.mean(0) - n.mean(0)).norm()
         / ((p.var(0, correction=0) + n.var(0, correction=0)).mean() / 2).sqrt(), "their sum"),
        ("standard deviations pooled", lambda p, n: (p.mean(0) - n.mean(0)).norm()
         / ((p.var(0, correction=0).sum().sqrt() + n.var(0, correction=0).sum().sqrt()) / 2), "standard deviations"),
    ],
    checks.supervised_features: [
        ("class means", lambda x, v: torch.stack([x[v == u].mean(0) for u in v.unique()]), "class means"),
        ("centred on the class means' mean", lambda x, v: (lambda m: m - m.mean(0))(
            torch.stack([x[v == u].mean(0) for u in v.unique()])), "mean of the class means"),
        ("sums over n", lambda x, v: torch.stack([x[v == u].sum(0) for u in v.unique()]) / len(x) - x.mean(0), "own count"),
        ("values in order of appearance", lambda x, v: torch.stack(
            [x[v == u].mean(0) for u in dict.fromkeys(v.tolist())]) - x.mean(0), "sorted order"),
        ("one row per prompt", lambda x, v: x - x.mean(0), "expected shape"),
    ],
}
WRONG = [(check, *wrong) for check, answers in WRONG_ANSWERS.items() for wrong in answers]


def test_every_exercise_has_several_wrong_answers():
    used = {re.findall(r"checks\.(\w+)\(", exercise.check_code)[0] for exercise in EXERCISES}
    assert used == {check.__name__ for check in WRONG_ANSWERS}
    assert all(len(answers) >= 4 for answers in WRONG_ANSWERS.values())


@pytest.mark.parametrize(("check", "description", "wrong", "hint"), WRONG,
                         ids=[f"{check.__name__}-{description}" for check, description, _, _ in WRONG])
def test_each_check_fails_each_wrong_answer_with_its_hint(check, description, wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint) if hint else pytest.raises(ExerciseFailed):
        check(wrong)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.notebook}-{e.index}")
def test_the_skip_line_under_a_stub_installs_the_reference_and_says_so(exercise):
    printed = _run_exercise(f"{exercise.stub_code}\n{exercise.skip_call}", exercise.check_code)
    assert "Skipped exercise" in printed and "reference solution" in printed
    assert "all checks passed" in printed


@pytest.mark.parametrize("source", [s for s in SOURCES if exercises(s)], ids=lambda p: p.stem)
def test_every_stub_shows_its_skip_line_commented_out(source):
    cells = ["".join(c["source"]) for c in json.loads(render(source)["exercise"])["cells"] if c["cell_type"] == "code"]
    stubs = [cell for cell in cells if "YOUR CODE HERE" in cell]
    assert [cell.rstrip().split("\n")[-2:] for cell in stubs] == [
        [SKIP_HINT, f"# {exercise.skip_call}"] for exercise in exercises(source)
    ]


def test_every_exercise_has_a_solution_to_skip_to():
    assert sorted(e.skip_call.split('"')[1] for e in EXERCISES) == sorted(SOLUTIONS)


def test_use_solution_refuses_an_unknown_exercise():
    with pytest.raises(CourseError, match="top_k_heads"):
        use_solution("top_k")


def test_an_exercise_notebook_runs_with_every_exercise_skipped(monkeypatch, capsys):
    """01's three exercises all feed later cells: with each stub skipped the notebook runs to the end."""
    import matplotlib

    matplotlib.use("agg")
    source = NOTEBOOKS / "source" / "01_hooks.py"
    skips = [exercise.skip_call for exercise in exercises(source)]
    monkeypatch.chdir(NOTEBOOKS / "exercises")
    namespace: dict = {}
    with torch.enable_grad():  # restores the grad mode the notebook switches off, for later tests
        for cell in json.loads(render(source)["exercise"])["cells"]:
            if cell["cell_type"] == "code":
                code = "".join(cell["source"])
                for skip in skips:
                    code = code.replace(f"# {skip}", skip)
                exec(compile(code, "01_hooks exercise", "exec"), namespace)  # noqa: S102 - our own course source
    printed = capsys.readouterr().out
    assert printed.count("Skipped exercise") == 3 and printed.count("all checks passed") == 3
    assert all(namespace[skip.split(" =")[0]] is SOLUTIONS[skip.split('"')[1]] for skip in skips)


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
        "    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n\n# %%\nchecks.double(f)\n"
    )
    written = build(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "00_tiny.ipynb", "exercises/00_tiny.ipynb"
    ]
    exercise = json.loads((tmp_path / "exercises" / "00_tiny.ipynb").read_text())
    code = "".join(exercise["cells"][1]["source"])
    assert '    """Double."""\n    # YOUR CODE HERE\n    raise NotImplementedError' in code
    assert "return 2 * x" not in code
    assert code.endswith(f'{SKIP_HINT}\n# f = use_solution("double")')
    assert build(tmp_path, check=True) == []


def test_teaching_guide_lists_every_exercise_check():
    guide = (NOTEBOOKS.parent / "docs" / "teaching-guide.md").read_text()
    used = {match for exercise in EXERCISES for match in re.findall(r"checks\.(\w+)\(", exercise.check_code)}
    missing = sorted(name for name in used if f"checks.{name}" not in guide)
    assert not missing, f"add these exercises to docs/teaching-guide.md: {missing}"
