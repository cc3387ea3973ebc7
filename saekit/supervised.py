"""Supervised feature dictionaries: what each head's activation holds about known task variables.

After Makelov, Lange & Nanda (2024), *Towards Principled Evaluations of Sparse Autoencoders for
Interpretability and Control*. A variable of the task (the answer's token, the template) takes
one value per prompt; its supervised feature for value v at head h is

    u[v, h] = E[x_h | variable = v] − E[x_h]

and the dictionary approximates a head vector by the mean plus one feature per variable,
``x̂_h = E[x_h] + Σ_a u_a[a(prompt), h]``. Fitted on some prompts and judged on others, it says
how much of each head's activation the variables explain, with no SAE. Against it an SAE is
judged twice: are its decoder directions the supervised features (`feature_alignment`), and does
a head's integer code say the variable's value (`code_information`)? On a test-bed, whose
circuit was trained to decide the task's answer, the circuit heads are the place to compare.

Everything here reads tensors already taken (`saekit.activations`, `saekit.codes`); nothing
runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saekit.errors import ActivationError
from saekit.sae.base import SAE
from saekit.tasks.base import ContrastiveTask

Variables = dict[str, Int[Tensor, " n_prompts"]]
"""One integer label per prompt for each named variable."""


def task_variables(task: ContrastiveTask) -> Variables:
    """The variables every contrastive task knows for its positive prompts: ``answer`` (the token
    id of the first right answer: IOI's indirect object, docstring's next argument, induction's
    repeated word, the year after greater-than's start year) and ``template`` (the template id)."""
    return {"answer": task.answer_tokens[:, 0].clone(), "template": task.template_ids.clone()}


def _check_variables(head_vectors: Tensor, variables: Variables, caller: str) -> None:
    if head_vectors.ndim != 3:
        raise ActivationError(
            f"{caller} takes head vectors of shape (n_prompts, n_heads, d), got {tuple(head_vectors.shape)}; "
            "pass HeadActivations.positive (or .negative)."
        )
    if not variables:
        raise ActivationError(f"{caller} needs at least one variable; task_variables(task) gives a task's own.")
    for name, labels in variables.items():
        if labels.ndim != 1 or len(labels) != len(head_vectors) or labels.is_floating_point():
            raise ActivationError(
                f"{caller}: variable {name!r} must be one integer label per prompt ({len(head_vectors)}), got "
                f"{labels.dtype} of shape {tuple(labels.shape)}; take the variables from the same prompts as the vectors."
            )


@dataclass(frozen=True)
class SupervisedDictionary:
    """Each head's mean vector and, per variable, one centred feature per value seen in fitting."""

    mean: Float[Tensor, "n_heads d"]
    values: dict[str, Int[Tensor, " n_values"]]
    """The values of each variable seen in fitting, sorted; ``features[name][i]`` belongs to ``values[name][i]``."""
    features: dict[str, Float[Tensor, "n_values n_heads d"]]

    def reconstruct(self, variables: Variables) -> Float[Tensor, "n_prompts n_heads d"]:
        """Mean plus each variable's feature for the prompt's value; a value never seen in fitting
        adds nothing (its feature is unknown, so the mean stands for it)."""
        missing = set(self.features) - set(variables)
        if missing:
            raise ActivationError(f"reconstruct needs the variables the dictionary was fitted on; missing {sorted(missing)}.")
        n_prompts = len(next(iter(variables.values())))
        reconstruction = self.mean.expand(n_prompts, *self.mean.shape).clone()
        for name, features in self.features.items():
            values = self.values[name]
            labels = variables[name].to(values.device)
            index = torch.searchsorted(values, labels).clamp(max=len(values) - 1)
            seen = values[index] == labels
            reconstruction += features[index] * seen[:, None, None]
        return reconstruction


def fit_supervised_dictionary(
    head_vectors: Float[Tensor, "n_prompts n_heads d"], variables: Variables
) -> SupervisedDictionary:
    """Each variable's conditional means minus the overall mean, per head, from ``head_vectors``
    (one row per prompt, e.g. ``HeadActivations.positive``) and their ``variables``."""
    _check_variables(head_vectors, variables, "fit_supervised_dictionary")
    mean = head_vectors.mean(0)
    values, features = {}, {}
    for name, labels in variables.items():
        seen, inverse, counts = torch.unique(labels.to(head_vectors.device), return_inverse=True, return_counts=True)
        sums = torch.zeros(len(seen), *mean.shape, dtype=head_vectors.dtype, device=head_vectors.device)
        sums.index_add_(0, inverse, head_vectors)
        values[name] = seen
        features[name] = sums / counts[:, None, None] - mean
    return SupervisedDictionary(mean, values, features)


def explained_variance(
    dictionary: SupervisedDictionary, head_vectors: Float[Tensor, "n_prompts n_heads d"], variables: Variables
) -> Float[Tensor, " n_heads"]:
    """Per head, the share of ``head_vectors``' variance around their own mean that the
    dictionary's reconstruction explains: 1 is all of it, 0 no better than the mean, negative
    worse. Judge it on prompts the dictionary was not fitted on: with few prompts per value,
    the fitted prompts are explained by their own noise."""
    _check_variables(head_vectors, variables, "explained_variance")
    if head_vectors.shape[1:] != dictionary.mean.shape:
        raise ActivationError(
            f"explained_variance: the vectors' heads and width {tuple(head_vectors.shape[1:])} differ from the "
            f"dictionary's {tuple(dictionary.mean.shape)}; fit it on activations of the same model and kind."
        )
    error = (head_vectors - dictionary.reconstruct(variables)).square().sum((0, 2))
    spread = (head_vectors - head_vectors.mean(0)).square().sum((0, 2))
    return 1 - error / spread.clamp_min(torch.finfo(spread.dtype).tiny)


def decoder_directions(sae: SAE) -> Float[Tensor, "n_directions d"]:
    """The directions an SAE's codes stand for: its unit decoder rows, and for a signed SAE
    (whose code tells a latent's negative from its positive) their negations too."""
    directions = torch.nn.functional.normalize(sae.W_dec.detach(), dim=-1)
    return torch.cat([directions, -directions]) if sae.signed else directions


def feature_alignment(
    dictionary: SupervisedDictionary, directions: Float[Tensor, "n_directions d"]
) -> dict[str, Float[Tensor, "n_values n_heads"]]:
    """For every supervised feature, its largest cosine similarity with one of ``directions``
    (`decoder_directions` of an SAE): 1 when a direction is exactly that feature. An SAE's
    directions follow whatever the vectors commonly do, so compare with the same directions'
    alignment to the features of a shuffled variable (notebook 09), not with 0."""
    if directions.ndim != 2 or directions.shape[-1] != dictionary.mean.shape[-1]:
        raise ActivationError(
            f"feature_alignment: the directions have shape {tuple(directions.shape)}, the dictionary's vectors are "
            f"{dictionary.mean.shape[-1]} wide; train the SAE on the same activation kind as the dictionary."
        )
    unit = torch.nn.functional.normalize(directions, dim=-1)
    return {
        name: (torch.nn.functional.normalize(features, dim=-1) @ unit.to(features).T).amax(-1)
        for name, features in dictionary.features.items()
    }


def code_information(codes: Int[Tensor, "n_prompts n_heads"], labels: Int[Tensor, " n_prompts"]) -> Float[Tensor, " n_heads"]:
    """Per head, the adjusted mutual information between its codes and a variable's values
    (scikit-learn's ``adjusted_mutual_info_score``): 1 when the code and the value split the
    prompts the same way, about 0 when the code says no more about the value than chance."""
    from sklearn.metrics import adjusted_mutual_info_score

    if codes.ndim != 2 or labels.ndim != 1 or len(codes) != len(labels):
        raise ActivationError(
            f"code_information takes codes (n_prompts, n_heads) and one label per prompt; got {tuple(codes.shape)} "
            f"and {tuple(labels.shape)}. Take both from the same prompts."
        )
    values = labels.cpu().numpy()
    return torch.tensor([adjusted_mutual_info_score(values, head.numpy()) for head in codes.cpu().T], dtype=torch.float32)
