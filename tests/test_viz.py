"""Figures draw what they claim: outlined heads, AUCs in legends, code counts, explorers."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from saekit.codes import NO_CODE  # noqa: E402
from saekit.errors import HeadSetError  # noqa: E402
from saekit.viz import (  # noqa: E402
    explore_code_histograms,
    explore_threshold,
    plot_code_histogram,
    plot_head_grid,
    plot_roc,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_head_grid_outlines_exactly_the_highlighted_heads():
    ax = plot_head_grid(torch.arange(12.0).view(3, 4), title="t", highlight=[(0, 1), (2, 3)])
    outlined = {(int(p.get_y() + 0.5), int(p.get_x() + 0.5)) for p in ax.patches if isinstance(p, Rectangle)}
    assert outlined == {(0, 1), (2, 3)}
    assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer" and ax.get_title() == "t"
    assert [t.get_text() for t in ax.texts][:3] == ["0", "1", "2"]


def test_head_grid_with_an_empty_highlight_outlines_nothing():
    """An ACDC circuit at a high threshold can keep no head; drawing it must still work."""
    ax = plot_head_grid(torch.zeros(2, 2), highlight=[])
    assert not [p for p in ax.patches if isinstance(p, Rectangle)]


def test_head_grid_rejects_heads_outside_the_grid():
    with pytest.raises(HeadSetError, match="outside"):
        plot_head_grid(torch.zeros(2, 2), highlight=[(2, 0)])


def test_roc_legend_reports_each_scorings_auc():
    from sklearn.metrics import roc_auc_score

    scores = torch.tensor([[0.9, 0.1, 0.4], [0.8, 0.3, 0.2]])
    truth = [(0, 0), (1, 0), (0, 2)]
    labels = np.array([1, 0, 1, 1, 0, 0])
    ax = plot_roc({"a": scores, "b": -scores}, truth)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == f"a (AUC {roc_auc_score(labels, scores.flatten().numpy()):.3f})"
    assert legend[1] == f"b (AUC {roc_auc_score(labels, -scores.flatten().numpy()):.3f})"


def test_roc_needs_both_classes():
    with pytest.raises(HeadSetError, match="all or none"):
        plot_roc(torch.rand(2, 2), torch.ones(2, 2, dtype=torch.bool))


def test_code_histogram_draws_positive_counts_up_and_negative_counts_down():
    positive = torch.tensor([3, 3, 5, NO_CODE])
    negative = torch.tensor([3, 7, 7])
    ax = plot_code_histogram(positive, negative, title="h")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["none", "3", "5", "7"]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights[:4] == [1, 2, 1, 0] and heights[4:] == [0, -1, 0, -2]
    assert "2 codes only on positives" in ax.get_title()  # 5 and none


def test_code_histogram_title_counts_codes_it_does_not_draw_and_says_so():
    assert plot_code_histogram(torch.tensor([4, 3]), torch.tensor([3])).get_title() == "1 code only on positives"
    many = torch.arange(30)  # 30 positive-only codes, at most top = 20 bars
    assert plot_code_histogram(many, torch.tensor([99]), top=20).get_title() == "30 codes only on positives, 20 drawn"


def test_explorers_build_and_draw_their_first_view_without_a_browser():
    codes = torch.randint(-1, 4, (6, 8))
    explorer = explore_code_histograms(codes, codes, n_heads=4, initial=(1, 2))
    assert explorer.widget.children[0].value == 6
    assert explorer.figure.axes[0].get_title().startswith("head 1.2")
    seen = []
    explorer = explore_threshold(torch.rand(2, 4), lambda mask: seen.append(int(mask.sum())) or 0.5)
    assert seen == [explorer.widget.children[0].value]
    explorer.widget.children[0].value = 3
    assert seen[-1] == 3
    assert explorer.figure.axes[0].get_title() == "top 8 heads: faithfulness 0.50"


@pytest.mark.notebooks  # runs a kernel and nbconvert, which the notebook environment has
def test_explorers_leave_a_static_figure_in_exported_html(tmp_path):
    """Executed on a kernel and converted with nbconvert without the widget state (which a saved
    notebook and the docs do not have), each explorer's cell still shows its figure as a PNG."""
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import torch\nfrom saekit.viz import explore_code_histograms, explore_threshold\n"
                                  "codes = torch.randint(-1, 4, (6, 8), generator=torch.Generator().manual_seed(0))"),
        nbformat.v4.new_code_cell("explore_code_histograms(codes, codes, n_heads=4)"),
        nbformat.v4.new_code_cell("explore_threshold(torch.rand(2, 4), lambda mask: 0.5)"),
    ])
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in notebook.cells[1:]:
        kinds = [set(output.get("data", {})) for output in cell.outputs]
        assert any("application/vnd.jupyter.widget-view+json" in kind for kind in kinds), kinds
        assert kinds[-1] >= {"image/png"}, "the static figure comes last, under the widget"
    notebook.metadata.pop("widgets", None)
    html, _ = HTMLExporter().from_notebook_node(notebook)
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64', html)) == 2


def test_plot_circuit_heads_draws_one_attention_panel_per_head_and_the_attribution_grid(toy_4l):
    import matplotlib.pyplot as plt

    from saekit.tasks import make_task
    from saekit.viz import plot_circuit_heads

    task = make_task("ioi", toy_4l, n_pairs=12, seed=0)
    attention, attribution = plot_circuit_heads(toy_4l, task, ["0.1", "2.3", "3.0"], {(2, 3): "mover"})
    titles = [ax.get_title() for ax in attention.axes]
    assert {"0.1", "2.3 mover", "3.0"} <= set(titles)
    assert [ax.get_title().split(" (")[0] for ax in attribution.axes if ax.get_title()][:2] == ["positives", "negatives"]
    plt.close("all")
