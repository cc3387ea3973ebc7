"""Figures for the course and for reports: head grids, ROC curves, code histograms, explorers.

Every plotting function draws on a matplotlib ``Axes`` (a new one unless ``ax`` is given) and
returns it, so figures compose into subplots and save with ``ax.figure.savefig``. Heads are shown
as a layer x head grid, the layout in which circuits are usually drawn. The ``explore_*``
functions return an [Explorer][saekit.viz.Explorer]: an ipywidgets control for Jupyter and, shown
under it, a plain matplotlib figure of its first view, which is what exported HTML, the docs
site and a reopened notebook (none of which keep widget state) display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saekit.ablation import FaithfulnessCurves, HeadsLike, head_mask, model_shape
from saekit.errors import HeadSetError
from saekit.scoring import sample_sd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from saekit.diagnose import PremiseDiagnosis
    from saekit._tl import HookedModel
    from saekit.heads import AttentionPatterns, LogitAttribution
    from saekit.tasks.base import ContrastiveTask


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def _grid(values: Any, what: str) -> np.ndarray:
    grid = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=float)
    if grid.ndim != 2:
        raise HeadSetError(f"{what} must be a [n_layers, n_heads] grid, got shape {grid.shape}.")
    return grid


def _heads_grid(heads: HeadsLike, shape: tuple[int, int]) -> np.ndarray:
    """A head set in any format saekit reads (empty too), as a boolean [n_layers, n_heads] array."""
    return head_mask(heads, *shape, allow_empty=True).numpy()


def plot_head_grid(
    values: Float[Tensor, "n_layers n_heads"],
    title: str = "",
    label: str = "score",
    highlight: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"] | None = None,
    highlight_label: str = "ground truth",
    annotate: bool = True,
    cmap: str = "viridis",
    ax: Axes | None = None,
    limit: float | None = None,
) -> Axes:
    """A layer x head heatmap of one value per head, with ``highlight`` heads outlined.

    Use it for node scores, patching effects (pass ``cmap="RdBu_r"``: centred at zero) or a
    circuit mask. ``annotate`` prints each value in its cell (for grids up to 16 x 16). A
    zero-centred map spans ±``limit`` (default: the largest |value|), so grids drawn side by
    side can share one scale.
    """
    from matplotlib.patches import Patch, Rectangle

    grid = _grid(values, "values")
    n_layers, n_heads = grid.shape
    ax = _axes(ax, (max(4.0, 0.55 * n_heads + 2), max(2.5, 0.45 * n_layers + 1.2)))
    limits = {}
    if cmap in ("RdBu_r", "RdBu", "coolwarm", "bwr"):
        bound = limit or float(np.abs(grid).max()) or 1.0
        limits = {"vmin": -bound, "vmax": bound}
    image = ax.imshow(grid, cmap=cmap, aspect="auto", **limits)
    ax.figure.colorbar(image, ax=ax, label=label)
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    if annotate and max(grid.shape) <= 16:
        middle = (image.norm.vmin + image.norm.vmax) / 2
        for (layer, head), value in np.ndenumerate(grid):
            text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2g}"
            light = value < middle if cmap == "viridis" else abs(value - middle) > 0.6 * (image.norm.vmax - middle)
            ax.text(head, layer, text, ha="center", va="center", fontsize=7, color="white" if light else "black")
    if highlight is not None:
        for layer, head in zip(*np.nonzero(_heads_grid(highlight, grid.shape))):
            ax.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.legend(handles=[Patch(fill=False, edgecolor="red", linewidth=2, label=highlight_label)],
                  loc="upper left", bbox_to_anchor=(0, -0.18 if n_layers < 6 else -0.1), frameon=False)
    return ax


def plot_roc(
    scores: Mapping[str, Float[Tensor, "n_layers n_heads"]] | Float[Tensor, "n_layers n_heads"],
    truth: Iterable[tuple[int, int]] | Bool[Tensor, "n_layers n_heads"],
    title: str = "ROC: head scores vs ground truth",
    ax: Axes | None = None,
) -> Axes:
    """ROC curves of one or more head scorings against a ground-truth head set, AUC in the legend.

    ``scores`` is one [n_layers, n_heads] grid or a mapping label → grid (e.g. one per seed or per
    method). The diagonal is a random ranking (AUC 0.5).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    named = {"scores": scores} if isinstance(scores, (Tensor, np.ndarray)) else dict(scores)
    if not named:
        raise HeadSetError("plot_roc needs at least one score grid.")
    first = _grid(next(iter(named.values())), "scores")
    is_true = _heads_grid(truth, first.shape).ravel()
    if is_true.all() or not is_true.any():
        raise HeadSetError("ROC needs ground-truth heads and non-ground-truth heads; the truth set is all or none.")
    ax = _axes(ax, (4.5, 4.2))
    for name, grid in named.items():
        flat = _grid(grid, f"scores[{name!r}]").ravel()
        false_positive_rate, true_positive_rate, _ = roc_curve(is_true, flat)
        auc = roc_auc_score(is_true, flat)
        ax.plot(false_positive_rate, true_positive_rate, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="random (AUC 0.5)")
    ax.set_xlabel("false positive rate (non-circuit heads picked)")
    ax.set_ylabel("true positive rate (circuit heads found)")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_code_histogram(
    positive_codes: Int[Tensor, " n_pos"],
    negative_codes: Int[Tensor, " n_neg"],
    title: str = "",
    top: int = 20,
    ax: Axes | None = None,
) -> Axes:
    """How often each code occurs for one head, positives up and negatives down.

    Codes seen only on the positives (what the node score counts) are drawn darker. At most
    ``top`` codes are shown: up to half of them the most frequent positive-only codes, the rest
    the most frequent others; the "no code" sentinel is labelled "none".
    """
    from matplotlib.patches import Patch

    from saekit.codes import NO_CODE

    positive = np.asarray(positive_codes.cpu() if isinstance(positive_codes, Tensor) else positive_codes).ravel()
    negative = np.asarray(negative_codes.cpu() if isinstance(negative_codes, Tensor) else negative_codes).ravel()
    codes, counts = np.unique(np.concatenate([positive, negative]), return_counts=True)
    # up to half the bars for positive-only codes (what the score counts), the rest by frequency
    by_count = np.argsort(-counts, kind="stable")
    only = by_count[~np.isin(codes[by_count], negative)][: top // 2]
    rest = by_count[~np.isin(by_count, only)][: top - len(only)]
    shown = np.sort(codes[np.concatenate([only, rest])])
    pos_counts = np.array([(positive == c).sum() for c in shown])
    neg_counts = np.array([(negative == c).sum() for c in shown])
    only_positive = (pos_counts > 0) & ~np.isin(shown, negative)
    x = np.arange(len(shown))
    ax = _axes(ax, (max(4.0, 0.35 * len(shown) + 2), 3.2))
    ax.bar(x, pos_counts, color=np.where(only_positive, "#08519c", "#6baed6"))
    ax.bar(x, -neg_counts, color="#fd8d3c")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, ["none" if c == NO_CODE else str(c) for c in shown], rotation=90 if len(shown) > 12 else 0)
    ax.set_xlabel("code (argmax SAE latent)")
    ax.set_ylabel("examples (negatives below 0)")
    ticks = ax.get_yticks()
    ax.set_yticks(ticks, [f"{abs(t):.0f}" for t in ticks])
    n_only = int(np.isin(np.unique(positive), negative, invert=True).sum())
    summary = f"{n_only} code{'' if n_only == 1 else 's'} only on positives"
    if only_positive.sum() < n_only:
        summary += f", {only_positive.sum()} drawn"
    ax.set_title(f"{title}  ({summary})" if title else summary)
    ax.legend(handles=[Patch(color="#6baed6", label="positives"), Patch(color="#08519c", label="only on positives"),
                       Patch(color="#fd8d3c", label="negatives")], fontsize=8, loc="upper right")
    return ax


def _head_names(n_layers: int, n_heads: int) -> list[tuple[str, int]]:
    return [(f"{layer}.{head}", layer * n_heads + head) for layer in range(n_layers) for head in range(n_heads)]


@dataclass(frozen=True)
class Explorer:
    """An interactive view and a static figure of its first setting.

    Displayed in a notebook it shows ``widget`` (a control above a figure it redraws, live only
    with a running kernel) and under it ``figure`` as a plain image output, so the view survives
    ``jupyter nbconvert --to html``, the docs site and reopening the saved notebook.
    """

    widget: Any  # ipywidgets.VBox
    figure: Figure

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
        display(self.figure)


def _redrawing(control, draw: Callable[[Any], Axes]) -> Explorer:
    """``control`` above a figure that ``draw(value)`` redraws whenever the control's value changes."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    output = widgets.Output()

    def redraw(value) -> None:
        with output:
            output.clear_output(wait=True)
            figure = draw(value).figure
            display(figure)
            plt.close(figure)

    control.observe(lambda change: redraw(change["new"]), names="value")
    redraw(control.value)
    static = draw(control.value).figure
    plt.close(static)  # shown by Explorer's display only, not again by the inline backend
    return Explorer(widgets.VBox([control, output]), static)


def explore_code_histograms(
    positive_codes: Int[Tensor, "n_pos n_heads_total"],
    negative_codes: Int[Tensor, "n_neg n_heads_total"],
    n_heads: int,
    initial: tuple[int, int] = (0, 0),
) -> Explorer:
    """A dropdown over heads ("L.H") that redraws that head's code histogram, positives vs negatives."""
    import ipywidgets as widgets

    n_layers = positive_codes.shape[1] // n_heads
    chooser = widgets.Dropdown(
        options=_head_names(n_layers, n_heads), value=initial[0] * n_heads + initial[1], description="head"
    )

    def draw(flat_head: int) -> Axes:
        return plot_code_histogram(
            positive_codes[:, flat_head], negative_codes[:, flat_head],
            title=f"head {flat_head // n_heads}.{flat_head % n_heads}",
        )

    return _redrawing(chooser, draw)


def explore_threshold(
    scores: Float[Tensor, "n_layers n_heads"],
    faithfulness_of: Callable[[Bool[Tensor, "n_layers n_heads"]], float],
    truth: Iterable[tuple[int, int]] | None = None,
) -> Explorer:
    """A slider over circuit size k: shows the top-k heads by score and the circuit's faithfulness.

    ``faithfulness_of(mask)`` is called for each k the learner visits (results are cached), so
    pass something quick, e.g. a closure over a small task.
    """
    import ipywidgets as widgets

    grid = torch.as_tensor(scores, dtype=torch.float)
    order = grid.flatten().argsort(descending=True, stable=True)
    cache: dict[int, float] = {}
    slider = widgets.IntSlider(value=min(8, grid.numel()), min=1, max=grid.numel(), description="heads k")

    def draw(k: int) -> Axes:
        mask = torch.zeros(grid.numel(), dtype=torch.bool)
        mask[order[:k]] = True
        mask = mask.view(grid.shape)
        if k not in cache:
            cache[k] = float(faithfulness_of(mask))
        return plot_head_grid(mask.float(), title=f"top {k} heads: faithfulness {cache[k]:.2f}",
                              label="in circuit", highlight=truth, annotate=False, cmap="Greys")

    return _redrawing(slider, draw)


def plot_faithfulness_curves(
    curves: FaithfulnessCurves,
    normalised: bool = True,
    label: str = "score order",
    title: str = "",
    ax: Axes | None = None,
) -> Axes:
    """The metric as heads are kept in score order vs in random order (mean ± sd band over seeds).

    ``curves`` comes from [`saekit.ablation.faithfulness_curves`][saekit.ablation.faithfulness_curves].
    With ``normalised`` the y axis is faithfulness (0 = every head ablated, 1 = full model); otherwise the raw metric,
    with the two ends drawn as dashed lines. A good ranking rises much faster than random.
    """
    kept = np.asarray(curves.n_kept)
    score = np.asarray(curves.normalised(curves.score_metric) if normalised else curves.score_metric)
    random = np.asarray([curves.normalised(c) if normalised else c for c in curves.random_metric])
    ax = _axes(ax, (5.5, 3.8))
    ax.plot(kept, score, marker=".", label=label)
    if len(random):
        mean, spread = random.mean(0), sample_sd(random, axis=0)
        ax.plot(kept, mean, color="grey", label=f"random order (mean ± sd, {len(random)} seeds)")
        ax.fill_between(kept, mean - spread, mean + spread, color="grey", alpha=0.3, linewidth=0)
    top, bottom = (1.0, 0.0) if normalised else (curves.full, curves.ablated_all)
    ax.axhline(top, color="black", linestyle="--", linewidth=1)
    ax.axhline(bottom, color="black", linestyle=":", linewidth=1)
    ax.set_xlabel("heads kept (the rest ablated)")
    ax.set_ylabel("faithfulness" if normalised else curves.metric_name)
    ax.set_title(title or f"{curves.ablation} ablation: full model (--), everything ablated (:)")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_premise(diagnosis: PremiseDiagnosis, title: str = "", ax: Axes | None = None) -> Axes:
    """The premise diagnostic in one figure: each head's d′ against its probe accuracy.

    Circuit heads are red and the rest grey (all blue without a ground truth); heads whose change
    is size-only (invisible to argmax codes) are ringed and labelled. Where the premise holds the
    red points sit to the right of and above the grey ones; where they mix, codes cannot
    separate the circuit. The dashed line is the probe accuracy above which a head counts as
    carrying class information.
    """
    from matplotlib.lines import Line2D

    from saekit.diagnose import INFORMATIVE_PROBE_ACCURACY

    n_layers, n_heads = diagnosis.d_prime.shape
    values = diagnosis.d_prime.flatten().numpy()
    finite = values[np.isfinite(values)]
    separation = np.where(np.isfinite(values), values, finite.max() if finite.size else 1.0)  # inf drawn at the right edge
    accuracy = diagnosis.probe_accuracy.flatten().numpy()
    size_only = diagnosis.size_only.flatten().numpy()
    ax = _axes(ax, (5.5, 4.2))
    handles = []
    if diagnosis.ground_truth is None:
        ax.scatter(separation, accuracy, color="#3182bd", s=25)
        handles.append(Line2D([], [], marker="o", linestyle="", color="#3182bd", label="head"))
    else:
        in_circuit = _heads_grid(diagnosis.ground_truth, (n_layers, n_heads)).ravel()
        for members, color, label in ((~in_circuit, "grey", "other heads"), (in_circuit, "red", "circuit heads")):
            ax.scatter(separation[members], accuracy[members], color=color, s=25, zorder=2)
            handles.append(Line2D([], [], marker="o", linestyle="", color=color, label=label))
    if size_only.any():
        ax.scatter(separation[size_only], accuracy[size_only], facecolor="none", edgecolor="black", s=110, zorder=3)
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="black",
                              markersize=10, label="size-only change"))
        for flat in np.nonzero(size_only)[0]:
            ax.annotate(f"{flat // n_heads}.{flat % n_heads}", (separation[flat], accuracy[flat]),
                        textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.axhline(INFORMATIVE_PROBE_ACCURACY, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("d′ = ‖μ₊ − μ₋‖ / pooled within-class spread")
    ax.set_ylabel("probe accuracy (cross-validated)")
    aucs = "" if diagnosis.auc_d_prime is None else (
        f"ROC AUC d′ {diagnosis.auc_d_prime:.2f}, probe {diagnosis.auc_probe:.2f}")
    ax.set_title("\n".join(part for part in (title, aucs) if part), fontsize=10)
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    return ax


# --------------------------------------------------------------------------------------------
# What the heads do: attention patterns and direct logit attribution (saekit.heads)
# --------------------------------------------------------------------------------------------

#: Roles of circuit heads, e.g. {(9, 9): "name mover"}; keys may also be "L.H" strings.
Roles = Mapping[Any, str]


def _head_title(head: tuple[int, int], roles: Roles | None) -> str:
    """The head as "L.H", followed by its role where ``roles`` gives one."""
    from saekit.tasks.ground_truth import parse_head

    named = {parse_head(key): role for key, role in (roles or {}).items()}
    return f"{head[0]}.{head[1]} {named[head]}" if head in named else f"{head[0]}.{head[1]}"


def _draw_pattern(ax: Axes, pattern: Tensor, labels: tuple[str, ...], x_labels: bool = True, y_labels: bool = True):
    """One pattern as an image on a fixed 0..1 scale (comparable across heads), tokens as ticks."""
    image = ax.imshow(np.asarray(pattern), cmap="Blues", vmin=0.0, vmax=1.0)
    size = 8 if len(labels) <= 20 else 6
    ax.set_xticks(range(len(labels)), labels if x_labels else [], rotation=90, fontsize=size)
    ax.set_yticks(range(len(labels)), labels if y_labels else [], fontsize=size)
    return image


def plot_attention_pattern(
    patterns: AttentionPatterns,
    head: Any | None = None,
    roles: Roles | None = None,
    ax: Axes | None = None,
) -> Axes:
    """One head's attention pattern: queries down, the keys they read from across, tokens as labels.

    ``patterns`` comes from [`attention_patterns`][saekit.heads.attention_patterns] (one prompt
    or a mean); ``head`` picks one of its heads ("L.H" or (layer, head); the first if None). The
    title is "L.H", the head's role where ``roles`` gives one, and what the pattern was averaged
    over.
    """
    from saekit.tasks.ground_truth import parse_head

    chosen = patterns.heads[0] if head is None else parse_head(head)
    n = len(patterns.labels)
    ax = _axes(ax, (max(4.0, 0.28 * n + 1.5), max(3.5, 0.28 * n + 1.0)))
    image = _draw_pattern(ax, patterns.of(chosen), patterns.labels)
    ax.figure.colorbar(image, ax=ax, label="attention")
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.set_title(f"{_head_title(chosen, roles)}\n{patterns.description}", fontsize=10)
    return ax


def plot_attention_grid(patterns: AttentionPatterns, roles: Roles | None = None, n_cols: int = 4) -> Figure:
    """The attention patterns of a set of heads (e.g. a circuit), one panel each, titled "L.H role".

    Panels share the token axes (labelled on the left column and the bottom row) and one colour
    scale, 0 to 1; the figure's title says what the patterns were averaged over.
    """
    import matplotlib.pyplot as plt

    if n_cols < 1:
        raise HeadSetError(f"n_cols must be at least 1, not {n_cols}.")
    n_panels, n = len(patterns.heads), len(patterns.labels)
    n_cols = min(n_cols, n_panels)
    n_rows = -(-n_panels // n_cols)
    side = max(2.2, 0.17 * n + 0.8)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(side * n_cols + 1.2, side * n_rows + 0.8),
                                layout="constrained", squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= n_panels:
            ax.set_axis_off()
            continue
        image = _draw_pattern(ax, patterns.pattern[index], patterns.labels,
                              x_labels=index + n_cols >= n_panels, y_labels=index % n_cols == 0)
        ax.set_title(_head_title(patterns.heads[index], roles), fontsize=10)
    figure.colorbar(image, ax=axes, label="attention", shrink=0.8)
    figure.suptitle(patterns.description)
    return figure


def plot_logit_attribution(
    positive: LogitAttribution,
    negative: LogitAttribution | None = None,
    highlight: HeadsLike | None = None,
    highlight_label: str = "circuit",
    title: str = "",
) -> Figure:
    """Each head's mean direct logit attribution as a layer x head grid, positives beside negatives.

    Red heads push the right answer up, blue ones the wrong answer; both panels share one scale,
    so a head that matters only for the positives stands out. ``highlight`` outlines a head set.
    """
    import matplotlib.pyplot as plt

    sides = [positive] if negative is None else [positive, negative]
    means = [side.mean() for side in sides]
    limit = max(float(mean.abs().max()) for mean in means) or 1.0
    n_layers, n_heads = means[0].shape
    width, height = max(4.0, 0.55 * n_heads + 2), max(2.5, 0.45 * n_layers + 1.2)
    figure, axes = plt.subplots(1, len(sides), figsize=(width * len(sides), height + 0.6), layout="constrained",
                                squeeze=False)
    for ax, side, mean in zip(axes[0], sides, means):
        plot_head_grid(mean, title=f"{side.side}s ({len(side.logit_diff)} prompts)", label="Δ logit",
                       highlight=highlight, highlight_label=highlight_label, cmap="RdBu_r", ax=ax, limit=limit)
    figure.suptitle("\n".join(part for part in (title, f"direct logit attribution: {positive.direction}") if part))
    return figure


def plot_circuit_heads(
    model: HookedModel, task: ContrastiveTask, heads: HeadsLike, roles: Roles | None = None
) -> tuple[Figure, Figure]:
    """What a circuit's heads do: their attention patterns averaged over the prompts of the first
    prompt's template, and every head's direct logit attribution with the circuit outlined."""
    from saekit.heads import attention_patterns, direct_logit_attribution, head_list

    chosen = head_list(heads, *model_shape(model))
    patterns = attention_patterns(model, task, chosen, template=int(task.template_ids[0]))
    attribution = [direct_logit_attribution(model, task, side) for side in ("positive", "negative")]
    return plot_attention_grid(patterns, roles), plot_logit_attribution(*attribution, highlight=chosen)


def explore_heads(
    model: HookedModel,
    task: ContrastiveTask,
    heads: HeadsLike,
    roles: Roles | None = None,
    side: str = "positive",
    batch_size: int = 64,
) -> Explorer:
    """Pick a head and a prompt (or a template's mean): its attention pattern beside the DLA grid.

    The left panel is the head's attention pattern on the chosen prompt (tokens as labels) or
    averaged over a template's prompts; the right one every head's direct logit attribution on
    the same prompts, the chosen head outlined. Patterns are computed once per choice and kept.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from saekit.heads import attention_patterns, direct_logit_attribution, head_list

    chosen = head_list(heads, int(model.cfg.n_layers), int(model.cfg.n_heads))
    attribution = direct_logit_attribution(model, task, side=side, batch_size=batch_size)
    templates = sorted(set(task.template_ids.tolist()))
    counts = {t: int((task.template_ids == t).sum()) for t in templates}
    choices = [(f"mean of template {t} ({counts[t]} prompts)", ("template", t)) for t in templates]
    prompts = task.positive_prompts if side == "positive" else task.negative_prompts
    choices += [(f"prompt {i}: {text[:60]}", ("prompt", i)) for i, text in enumerate(prompts)]
    computed: dict[tuple[str, int], AttentionPatterns] = {}

    def draw(head: int, choice: tuple[str, int]) -> Figure:
        kind, value = choice
        if choice not in computed:
            computed[choice] = attention_patterns(
                model, task, chosen, side=side, batch_size=batch_size,
                **({"template": value} if kind == "template" else {"prompts": [value]}),
            )
        rows = task.template_ids == value if kind == "template" else torch.arange(task.n_pairs) == value
        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
        plot_attention_pattern(computed[choice], chosen[head], roles=roles, ax=left)
        plot_head_grid(attribution.heads[rows].mean(0), title=f"direct logit attribution ({attribution.direction})",
                       label="Δ logit", highlight=[chosen[head]], highlight_label=_head_title(chosen[head], roles),
                       cmap="RdBu_r", ax=right)
        return figure

    def show(head: int, choice: tuple[str, int]) -> None:
        figure = draw(head, choice)
        display(figure)
        plt.close(figure)

    controls = {
        "head": widgets.Dropdown(options=[(_head_title(h, roles), i) for i, h in enumerate(chosen)],
                                 description="head"),
        "choice": widgets.Dropdown(options=choices, description="prompts", layout=widgets.Layout(width="60%")),
    }
    output = widgets.interactive_output(show, controls)
    static = draw(controls["head"].value, controls["choice"].value)
    plt.close(static)  # shown by Explorer's display only, not again by the inline backend
    return Explorer(widgets.VBox([widgets.HBox(list(controls.values())), output]), static)
