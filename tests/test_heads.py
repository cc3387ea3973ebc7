"""What the heads do: attention patterns (causal, averaged by end alignment) and direct logit
attribution (each head's write, exactly decomposing the logit difference), and their figures."""

from __future__ import annotations

import re
from types import SimpleNamespace

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from saekit.errors import HeadSetError, TaskError  # noqa: E402
from saekit.heads import attention_patterns, direct_logit_attribution, head_list  # noqa: E402
from saekit.tasks import make_task  # noqa: E402
from saekit.tasks.base import ContrastiveTask, MetricKind, compute_metric  # noqa: E402
from saekit.viz import (  # noqa: E402
    explore_heads,
    plot_attention_grid,
    plot_attention_pattern,
    plot_logit_attribution,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def ioi(toy_4l):
    return make_task("ioi", toy_4l, n_pairs=12, seed=0)


# --------------------------------------------------------------------------------------------
# Direct logit attribution
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_name", ["ioi", "docstring", "greater-than"])
@pytest.mark.parametrize("side", ["positive", "negative"])
def test_dla_components_sum_exactly_to_the_logit_difference(toy_4l, task_name, side):
    """With the final LayerNorm's cached scale the decomposition is exact: heads + embeddings +
    biases = the logit difference the metric reads (the metric itself for the logit metrics;
    greater-than's probability metric gets the mean-answer − mean-wrong logit difference)."""
    task = make_task(task_name, toy_4l, n_pairs=10, seed=0)
    attribution = direct_logit_attribution(toy_4l, task, side=side, batch_size=4)
    total = attribution.heads.sum((1, 2)) + attribution.other.sum(1)
    torch.testing.assert_close(total, attribution.logit_diff, atol=1e-4, rtol=0)
    with torch.no_grad():
        final = task.answer_logits(toy_4l(task.tokens(side))).float()
    kind = MetricKind.LOGIT_DIFF if task.metric is MetricKind.PROB_DIFF else task.metric
    torch.testing.assert_close(
        attribution.logit_diff, compute_metric(final, task.answer_tokens, task.wrong_tokens, kind), atol=1e-4, rtol=0
    )
    assert attribution.heads.shape == (10, 4, 8)
    assert attribution.other_labels == ("embed", "pos_embed", "bias", "unembed and final-norm bias")


def test_each_heads_dla_is_its_own_write_through_the_cached_final_norm(toy_4l, ioi):
    """Head by head (so a decomposition with heads swapped would fail): z · W_O at the answer
    position, centred, divided by ln_final's cached scale, times its weight, onto W_U[a] − W_U[b]."""
    attribution = direct_logit_attribution(toy_4l, ioi)
    with torch.no_grad():
        _, cache = toy_4l.run_with_cache(ioi.positive_tokens)
    rows, last = torch.arange(ioi.n_pairs), ioi.lengths - 1
    z = torch.stack([cache[f"blocks.{layer}.attn.hook_z"][rows, last] for layer in range(4)], 1)  # [n, L, H, d_head]
    writes = torch.einsum("nlhe,lhem->nlhm", z, toy_4l.W_O.detach())
    centred = writes - writes.mean(-1, keepdim=True)
    scale = cache["ln_final.hook_scale"][rows, last]  # [n, 1]
    direction = toy_4l.W_U.detach()[:, ioi.answer_tokens[:, 0]] - toy_4l.W_U.detach()[:, ioi.wrong_tokens[:, 0]]
    through_norm = toy_4l.ln_final.w.detach()[:, None] * direction  # [d_model, n]
    expected = torch.einsum("nlhm,mn->nlh", centred / scale[:, None, None], through_norm)
    torch.testing.assert_close(attribution.heads, expected, atol=1e-5, rtol=1e-4)


def test_dla_does_not_depend_on_the_batch_size(toy_4l, ioi):
    one = direct_logit_attribution(toy_4l, ioi, batch_size=1)
    torch.testing.assert_close(one.heads, direct_logit_attribution(toy_4l, ioi, batch_size=64).heads, atol=1e-5, rtol=0)
    torch.testing.assert_close(one.mean(), one.heads.mean(0))


def test_dla_is_exact_on_a_gpt2_with_mlps(tiny_gpt2):
    """The Hugging Face GPT-2 path (MLPs, TransformerLens' processed final norm) decomposes exactly too."""
    task = make_task("ioi", tiny_gpt2, n_pairs=6, seed=0)
    attribution = direct_logit_attribution(tiny_gpt2, task, side="negative", batch_size=4)
    assert attribution.other_labels[:2] == ("0_mlp_out", "1_mlp_out")
    torch.testing.assert_close(attribution.heads.sum((1, 2)) + attribution.other.sum(1), attribution.logit_diff,
                               atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(attribution.logit_diff, task.metric_from_logits(tiny_gpt2(task.negative_tokens)),
                                   atol=1e-5, rtol=0)


def test_dla_refuses_an_unknown_side(toy_4l, ioi):
    with pytest.raises(TaskError, match="side"):
        direct_logit_attribution(toy_4l, ioi, side="positives")


# --------------------------------------------------------------------------------------------
# Attention patterns
# --------------------------------------------------------------------------------------------


def test_patterns_are_causal_rows_summing_to_one(toy_4l, ioi):
    """On one prompt and on the mean over prompts of different lengths."""
    everything = torch.ones(4, 8, dtype=torch.bool)
    assert len(set(ioi.lengths.tolist())) > 1  # the mean mixes lengths
    for patterns in (attention_patterns(toy_4l, ioi, everything, prompts=[2]),
                     attention_patterns(toy_4l, ioi, everything)):
        torch.testing.assert_close(patterns.pattern.sum(-1), torch.ones(patterns.pattern.shape[:2]))
        assert torch.equal(patterns.pattern.triu(1), torch.zeros_like(patterns.pattern))


def test_one_prompts_pattern_is_the_models_with_its_tokens_as_labels(toy_4l, ioi):
    patterns = attention_patterns(toy_4l, ioi, ["3.2", (0, 1)], prompts=[1])
    length = int(ioi.lengths[1])
    with torch.no_grad():
        _, cache = toy_4l.run_with_cache(ioi.positive_tokens[1:2, :length])
    torch.testing.assert_close(patterns.of("3.2"), cache["blocks.3.attn.hook_pattern"][0, 2])
    torch.testing.assert_close(patterns.of((0, 1)), cache["blocks.0.attn.hook_pattern"][0, 1])
    assert " ".join(patterns.labels[1:]) == ioi.positive_prompts[1]
    assert patterns.heads == ((3, 2), (0, 1)) and patterns.n_prompts == 1


def test_mean_patterns_do_not_depend_on_the_batch_size(toy_4l, ioi):
    by_one = attention_patterns(toy_4l, ioi, ["1.4", "2.0"], batch_size=1)
    torch.testing.assert_close(by_one.pattern, attention_patterns(toy_4l, ioi, ["1.4", "2.0"], batch_size=5).pattern)


class _HandModel(torch.nn.Module):
    """One layer, two heads: head 0 attends to the previous token (BOS to itself), head 1 is
    uniform; padding rows hold 7.0, which must never reach a mean."""

    PAD = 99

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.cfg = SimpleNamespace(n_layers=1, n_heads=2)
        self.tokenizer = SimpleNamespace(batch_decode=lambda ids: [f"t{row[0]}" for row in ids])

    def run_with_cache(self, tokens, names_filter):
        n, seq = tokens.shape
        previous = torch.eye(seq).roll(-1, dims=1).tril()
        previous[0, 0] = 1.0
        uniform = torch.ones(seq, seq).tril()
        uniform = uniform / uniform.sum(-1, keepdim=True)
        pattern = torch.stack([previous, uniform])[None].repeat(n, 1, 1, 1)
        pattern[(tokens == self.PAD)[:, None, :, None].expand(-1, 2, -1, seq)] = 7.0
        name = "blocks.0.attn.hook_pattern"
        assert names_filter(name)
        return None, {name: pattern}


def _hand_task(rows: list[list[int]], template_ids: list[int]) -> ContrastiveTask:
    width = max(map(len, rows))
    tokens = torch.tensor([row + [_HandModel.PAD] * (width - len(row)) for row in rows])
    n = len(rows)
    return ContrastiveTask(
        name="hand", positive_tokens=tokens, negative_tokens=tokens.flip(1),
        lengths=torch.tensor([len(row) for row in rows]),
        answer_tokens=torch.zeros(n, 1, dtype=torch.long), wrong_tokens=torch.ones(n, 1, dtype=torch.long),
        metric=MetricKind.LOGIT_DIFF, template_ids=torch.tensor(template_ids),
        positive_prompts=("",) * n, negative_prompts=("",) * n,
    )


def test_mean_pattern_of_a_hand_built_case_aligns_prompts_at_their_end():
    """Prompts of lengths 5 and 3: the short one's rows land on aligned rows 2..4, its BOS in
    column 2. The previous-token head's mean is worked out by hand; the uniform head's last row
    averages 1/5 and 1/3 over the keys both prompts have."""
    task = _hand_task([[0, 11, 12, 13, 14], [0, 13, 14]], [0, 1])
    patterns = attention_patterns(_HandModel(), task, [(0, 0), (0, 1)], batch_size=2)
    expected_previous = torch.tensor([
        [1.0, 0.0, 0.0, 0.0, 0.0],  # row 0: the long prompt's BOS only
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.5, 0.5, 0.0, 0.0],  # long: previous token (col 1); short: its BOS attends to itself (col 2)
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.0],
    ])
    torch.testing.assert_close(patterns.of((0, 0)), expected_previous)
    torch.testing.assert_close(patterns.of("0.1")[4], torch.tensor([0.1, 0.1, 0.1 + 1 / 6, 0.1 + 1 / 6, 0.1 + 1 / 6]))
    assert patterns.labels == ("t0", "t11", "[t12]", "t13", "t14")  # col 2: t12 in one prompt, BOS in the other
    assert patterns.n_prompts == 2 and "aligned at the end" in patterns.description
    only_short = attention_patterns(_HandModel(), task, [(0, 0)], template=1)
    torch.testing.assert_close(only_short.of("0.0"), torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0]]))


@pytest.mark.parametrize(
    ("heads", "error", "words"),
    [([], HeadSetError, "empty"), (["4.0"], HeadSetError, "outside"), ("1.2", HeadSetError, "list of heads"),
     (torch.ones(2, 2, dtype=torch.bool), HeadSetError, r"shape \[1, 2\]")],
)
def test_bad_head_sets_are_refused(heads, error, words):
    with pytest.raises(error, match=words):
        attention_patterns(_HandModel(), _hand_task([[0, 1]], [0]), heads)


def test_bad_prompt_choices_are_refused():
    task = _hand_task([[0, 1], [0, 2, 3]], [0, 1])
    with pytest.raises(TaskError, match=r"templates are \[0, 1\]"):
        attention_patterns(_HandModel(), task, ["0.0"], template=5)
    with pytest.raises(TaskError, match="out of range"):
        attention_patterns(_HandModel(), task, ["0.0"], prompts=[2])


def test_head_list_keeps_the_order_given_and_reads_masks_layer_by_layer():
    assert head_list(["1.0", (0, 1)], 2, 2) == ((1, 0), (0, 1))
    assert head_list(torch.tensor([[False, True], [True, False]]), 2, 2) == ((0, 1), (1, 0))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def test_pattern_figure_has_tokens_on_both_axes_and_the_head_with_its_role_as_title(toy_4l, ioi):
    patterns = attention_patterns(toy_4l, ioi, ["0.1"], prompts=[0])
    ax = plot_attention_pattern(patterns, "0.1", roles={"0.1": "previous token"})
    assert ax.get_title().splitlines() == ["0.1 previous token", patterns.description]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(patterns.labels)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(patterns.labels)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("key (attended to)", "query")
    torch.testing.assert_close(torch.as_tensor(ax.images[0].get_array().data), patterns.of("0.1"))


def test_grid_figure_titles_each_head_with_its_role(toy_4l, ioi):
    heads = [(1, 4), (0, 1), (3, 2), (2, 0), (2, 5)]
    patterns = attention_patterns(toy_4l, ioi, heads, template=int(ioi.template_ids[0]))
    figure = plot_attention_grid(patterns, roles={(1, 4): "mover", "2.0": "inhibition"}, n_cols=3)
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["1.4 mover", "0.1", "3.2", "2.0 inhibition", "2.5"]
    assert figure.get_suptitle() == patterns.description
    for ax, index in zip(panels, range(len(heads))):
        torch.testing.assert_close(torch.as_tensor(ax.images[0].get_array().data), patterns.pattern[index])
    # tokens on the left column and bottom row only; the sixth cell of the 2 x 3 grid is empty
    assert [t.get_text() for t in panels[3].get_yticklabels()] == list(patterns.labels)
    assert not any(t.get_text() for t in panels[1].get_yticklabels())
    assert [t.get_text() for t in panels[2].get_xticklabels()] == list(patterns.labels)  # nothing below it
    assert not any(t.get_text() for t in panels[0].get_xticklabels())


def test_dla_figure_puts_positives_beside_negatives_on_one_scale(toy_4l, ioi):
    positive = direct_logit_attribution(toy_4l, ioi)
    negative = direct_logit_attribution(toy_4l, ioi, side="negative")
    figure = plot_logit_attribution(positive, negative, highlight=[(1, 4)], title="ioi")
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["positives (12 prompts)", "negatives (12 prompts)"]
    for ax, side in zip(panels, (positive, negative)):
        torch.testing.assert_close(torch.as_tensor(ax.images[0].get_array().data).float(), side.mean())
        assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"
    bound = max(float(positive.mean().abs().max()), float(negative.mean().abs().max()))
    assert [ax.images[0].get_clim() for ax in panels] == [(-bound, bound)] * 2
    assert figure.get_suptitle() == "ioi\ndirect logit attribution: mean answer − mean wrong logit"


def test_head_explorer_redraws_and_keeps_a_static_first_view(toy_4l, ioi, monkeypatch):
    import saekit.heads

    asked = []
    original = saekit.heads.attention_patterns
    monkeypatch.setattr(saekit.heads, "attention_patterns", lambda *a, **k: asked.append(k) or original(*a, **k))
    explorer = explore_heads(toy_4l, ioi, ["0.1", "1.4"], roles={"1.4": "mover"})
    left, right = [ax for ax in explorer.figure.axes if ax.images]
    first = int(ioi.template_ids.min())
    assert left.get_title().startswith(f"0.1\nmean of {int((ioi.template_ids == first).sum())} ioi positive prompts, "
                                       f"template {first}")
    assert right.get_title().startswith("direct logit attribution")
    assert [call.get("template") for call in asked] == [first]  # computed once, for the first view
    head, choice = explorer.widget.children[0].children
    assert choice.options[-1][1] == ("prompt", ioi.n_pairs - 1)
    head.value, choice.value = 1, ("prompt", 3)
    assert asked[-1].get("prompts") == [3]  # the change redrew the view for prompt 3
    assert left.get_title().startswith("0.1\n")  # the static figure stays the first view


@pytest.mark.notebooks  # runs a kernel and nbconvert, which the notebook environment has
def test_head_explorer_leaves_its_static_figure_in_exported_html(tmp_path):
    """Run on a kernel and exported without widget state (as the docs and a saved notebook
    are), the explorer's cell still shows its figure as a PNG after the widget."""
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "import saekit\nfrom saekit.tasks import make_task\nfrom saekit.viz import explore_heads\n"
            "model = saekit.load_model('toy-4l')\ntask = make_task('ioi', model, n_pairs=4, seed=0)"
        ),
        nbformat.v4.new_code_cell("explore_heads(model, task, ['0.1', '1.4'])"),
    ])
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    kinds = [set(output.get("data", {})) for output in notebook.cells[1].outputs]
    assert any("application/vnd.jupyter.widget-view+json" in kind for kind in kinds), kinds
    assert kinds[-1] >= {"image/png"}, "the static figure comes last, under the widget"
    notebook.metadata.pop("widgets", None)
    html, _ = HTMLExporter().from_notebook_node(notebook)
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64', html)) == 1


# --------------------------------------------------------------------------------------------
# Roles recorded in a toy model's ground truth
# --------------------------------------------------------------------------------------------


def _zoo_with(monkeypatch, tmp_path, truth: dict):
    import json

    import saekit.zoo

    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "ground_truth.json").write_text(json.dumps({"tasks": truth}))
    monkeypatch.setattr(saekit.zoo, "toy_model_names", lambda: ["tb"])
    monkeypatch.setattr(saekit.zoo, "toy_model_dir", lambda name: tmp_path / name)


def test_ground_truth_roles_pair_each_head_with_its_role(monkeypatch, tmp_path):
    from saekit.tasks.ground_truth import ground_truth_heads, ground_truth_roles

    _zoo_with(monkeypatch, tmp_path, {
        "induction": {"heads": [[2, 1], [0, 3]], "roles": ["induction", "previous-token"]},
        "ioi": {"heads": [[1, 1]]},
    })
    roles = ground_truth_roles("tb", "induction")
    assert roles == {(2, 1): "induction", (0, 3): "previous-token"}
    assert set(roles) == ground_truth_heads("tb", "induction")
    assert ground_truth_roles("tb", "ioi") == {}  # no roles recorded: titles fall back to "L.H"
    with pytest.raises(TaskError, match="no ground truth for task 'docstring'"):
        ground_truth_roles("tb", "docstring")


def test_ground_truth_roles_refuse_a_list_that_does_not_match_the_heads(monkeypatch, tmp_path):
    from saekit.tasks.ground_truth import ground_truth_roles

    _zoo_with(monkeypatch, tmp_path, {"ioi": {"heads": [[1, 1], [2, 0]], "roles": ["name-mover"]}})
    with pytest.raises(TaskError, match="2 heads but 1 roles"):
        ground_truth_roles("tb", "ioi")


def test_pretrained_ground_truths_have_no_roles_and_unknown_pairs_raise():
    from saekit.tasks.ground_truth import ground_truth_roles

    assert ground_truth_roles("gpt2-small", "ioi") == {}
    with pytest.raises(TaskError, match="No ground truth"):
        ground_truth_roles("gpt2-small", "docstring")
