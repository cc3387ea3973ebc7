"""Test-bed models whose circuits are known by construction (strict interchange intervention training).

A test-bed model is trained on mostly generic text (`saekit.zoo.language`, next-token loss
on every position) and on the four tasks, and each task's circuit is *imposed* by training, in
the manner of InterpBench's strict interchange-intervention training (SIIT):

- every task has **roles** in stages (`CIRCUIT_ROLES`), each aligned with one head: stage k in
  layer k, the head drawn per training seed (`draw_circuits`; induction's where the warm-up
  formed it, `place_by_attention`; or given, ``fixed_circuits``), distinct between tasks (but
  for docstring's argument mover with ``docstring_mover_on_induction_head`` and IOI's
  previous-token and induction heads with ``ioi_on_induction_heads``);
- **behaviour**: cross-entropy on the task answers (negatives: uniform over the tokens that are
  equally plausible once the task's information is gone, as for the toy models);
- **interchange (IIT)**: the high-level model of a task is its stages: the answer needs every
  role's variable, and the last role's variable *is* the answer. So (a) replacing every circuit
  head's ``hook_z`` by its value on the paired negative, or the mean over negatives of the same
  template, must give the negative's output, and (b) replacing the last role's ``hook_z`` by its
  value on another positive of the same template must give that positive's answer;
- **strictness (SIIT)**: replacing every head *outside* the circuit by its value on the paired
  negative, on another prompt of the same template, or by the negatives' mean must leave the
  output unchanged (the task's answer; with ``strict_toward_clean``, the clean output; with
  ``strict_logits``, the clean logits over the tokens the answer is chosen among; with
  ``strict_log_odds``, for the tasks it lists, also the clean log-odds of the answers; with
  ``strict_subsets``, a random subset of those heads is replaced, in a ``strict_subset_share``
  of the rows; with ``strict_one_head_share``, one of them, in that share of the rows, or in as
  many rows more with ``strict_one_head_beside``, drawn partly by its measured effect with
  ``strict_one_head_adaptive``).

A task batch comes in runs of pairs of one template and length (`grouped_pairs`), so "another
prompt of the same template" and "the negatives' mean" are other prompts, not the pair itself.
All losses act on outputs; none touches an activation, so no head is silenced and every head
keeps the job the generic text gives it. Training never touches the global random state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.nn import functional as F

from saekit._checks import check_device
from saekit._io import write_json
from saekit.errors import ModelError, SaekitError
from saekit.tasks import TASK_NAMES, ContrastiveTask, make_task
from saekit.tasks.ground_truth import heads_to_mask
from saekit.tasks.toy import ToyPair, check_negatives, toy_pairs
from saekit.zoo import CONFIG_FILE, read_zoo_config, toy_model_dir, toy_model_names
from saekit.zoo.checkpoint import TrainingState, load_training_state, save_training_state
from saekit.zoo.language import TESTBED_VOCABULARY, check_sentence_kinds, copy_document, generic_documents
from saekit.zoo.model import AttnOnlyTransformer, ToyModelConfig, ZPatch
from saekit.zoo.tokenizer import build_toy_tokenizer
from saekit.zoo.train import (
    TrainingBatch, TrainingConfig, _learning_rate, _step_seed, check_answer_smoothing, check_pairs_per_task,
    induction_warmup_batch, pairs_batch, save_toy_model,
)

#: Each task's roles (one head each) in stages, in the order information flows through them: the
#: first stage reads the task's words, each later stage what the stage before it wrote.
CIRCUIT_ROLES: dict[str, tuple[tuple[str, ...], ...]] = {
    "ioi": (("duplicate-token",), ("s-inhibition",), ("name-mover",)),
    "greater-than": (("year-reader",), ("comparator",)),
    "docstring": (("previous-argument", "parameter-mover"), ("argument-mover",)),
    # The induction head finds the earlier occurrence by its successor's previous-token write
    # (keys) and by the duplicate-token head's write at the current word (queries): without the
    # second role, induction's pair kept about 0.1 of the task under mean ablation (docs/testbed.md).
    "induction": (("previous-token", "duplicate-token"), ("induction",)),
}


def role_names(task: str) -> list[str]:
    """The roles of ``task``'s circuit, stage by stage (the order of its heads everywhere)."""
    return [role for stage in CIRCUIT_ROLES[task] for role in stage]


Circuits = dict[str, list[tuple[int, int, str]]]
"""Per task, (layer, head, role) of each circuit head, in role order."""


def circuit_mask(circuit: list[tuple[int, int, str]], n_layers: int, n_heads: int) -> Bool[Tensor, "n_layers n_heads"]:
    """True on the heads of ``circuit`` (its roles dropped)."""
    return heads_to_mask([(layer, head) for layer, head, _ in circuit], n_layers, n_heads)


def _check_room(n_layers: int, n_heads: int) -> None:
    """Refuse a shape with fewer layers than the deepest circuit has stages, or fewer heads per
    layer than the roles placed there (every task's stage k sits in layer k, no head shared)."""
    deepest = max(len(stages) for stages in CIRCUIT_ROLES.values())
    if n_layers < deepest:
        raise SaekitError(
            f"A test-bed needs at least {deepest} layers (one per stage of the deepest circuit), got {n_layers}: "
            f"use a ToyModelConfig with n_layers >= {deepest}."
        )
    widest = max(sum(len(stages[k]) for stages in CIRCUIT_ROLES.values() if k < len(stages)) for k in range(deepest))
    if n_heads < widest:
        raise SaekitError(
            f"A test-bed needs at least {widest} heads per layer (the roles that share a layer, one head each), got "
            f"{n_heads}: use a ToyModelConfig with n_heads >= {widest}."
        )


def draw_circuits(n_layers: int, n_heads: int, seed: int, fixed: Circuits | None = None) -> Circuits:
    """Place every task's roles on heads: stage k of a task in layer k, each role on a head
    drawn per seed, no head shared. Tasks in ``fixed`` keep the heads given there; the others
    are drawn around them.

    The first stage reads the task's words from the token embeddings, each later stage what the
    stage before it wrote. Under strictness every other head writes another prompt's values into
    the residual stream, and a role placed higher reads its input under all of them: with the
    first stage in layer 2 greater-than was never learned, with the induction head in layer 3
    its pair carried nothing, in layer 1 it carried the task (docs/testbed.md)."""
    _check_room(n_layers, n_heads)
    rng = np.random.default_rng([seed, 7])
    fixed = fixed or {}
    taken = {(layer, head) for heads in fixed.values() for layer, head, _ in heads}
    circuits: Circuits = {task: list(heads) for task, heads in fixed.items()}
    for task in [task for task in TASK_NAMES if task not in fixed]:
        drawn = []
        for layer, stage in enumerate(CIRCUIT_ROLES[task]):
            for role in stage:
                free = [h for h in range(n_heads) if (layer, h) not in taken]
                head = int(rng.choice(free))
                taken.add((layer, head))
                drawn.append((layer, head, role))
        circuits[task] = drawn
    return {task: circuits[task] for task in TASK_NAMES}


def _checked_phases(phases) -> tuple[tuple[tuple[str, ...], int], ...]:
    """``task_phases`` as tuples (as given in Python, or as lists from JSON), each phase a
    non-empty list of distinct tasks and a number of steps (1 or more); `SaekitError` otherwise."""
    example = '[[["docstring", "induction"], 1000]]'
    if not isinstance(phases, (list, tuple)):
        raise SaekitError(f"task_phases is a list of (tasks, steps), e.g. {example}; got {phases!r}.")
    checked = []
    for phase in phases:
        tasks, steps = phase if isinstance(phase, (list, tuple)) and len(phase) == 2 else (None, None)
        if not (isinstance(tasks, (list, tuple)) and tasks and type(steps) is int and steps >= 1):
            raise SaekitError(f"Each of task_phases is (tasks, steps >= 1), e.g. {example}; got {phase!r}.")
        checked.append((_checked_tasks("A phase of task_phases", tasks), steps))
    return tuple(checked)


def _checked_tasks(what: str, tasks) -> tuple[str, ...]:
    """``tasks`` as a tuple if it lists distinct task names (as given in Python, or a JSON array);
    `SaekitError` naming ``what`` otherwise."""
    if not (isinstance(tasks, (list, tuple)) and all(t in TASK_NAMES for t in tasks) and len(set(tasks)) == len(tasks)):
        raise SaekitError(f"{what} lists distinct tasks of {', '.join(TASK_NAMES)}; got {tasks!r}.")
    return tuple(tasks)


def _checked_fixed_circuits(fixed, shape: ToyModelConfig) -> dict[str, tuple[tuple[int, int], ...]]:
    """``fixed_circuits`` with each head a (layer, head) tuple, if every task's heads are as many
    as its roles, each stage's in the layer of its index and inside ``shape``, and no head is
    given twice; `SaekitError` otherwise."""
    example = '{"ioi": [[0, 5], [1, 2], [2, 6]]}'
    if not isinstance(fixed, dict):
        raise SaekitError(f"fixed_circuits maps tasks to their heads in role order, e.g. {example}; got {fixed!r}.")
    _checked_tasks("fixed_circuits", list(fixed))
    checked, seen = {}, set()
    for task, heads in fixed.items():
        layers = [layer for layer, stage in enumerate(CIRCUIT_ROLES[task]) for _ in stage]
        given = heads if isinstance(heads, (list, tuple)) else []
        pairs = [tuple(head) if isinstance(head, (list, tuple)) else () for head in given]
        if not (
            len(pairs) == len(layers)
            and all(len(pair) == 2 and all(type(i) is int for i in pair) for pair in pairs)
            and [layer for layer, _ in pairs] == layers
            and all(0 <= head < shape.n_heads for _, head in pairs)
            and len(set(pairs)) == len(pairs)
        ):
            raise SaekitError(
                f"fixed_circuits[{task!r}] lists one [layer, head] per role ({', '.join(role_names(task))}), "
                f"in layers {layers}, heads below {shape.n_heads}, none twice; got {heads!r}."
            )
        if shared := seen & set(pairs):
            raise SaekitError(f"fixed_circuits gives {sorted(shared)} to two tasks: circuits are distinct.")
        seen |= set(pairs)
        checked[task] = tuple(pairs)
    return checked


@dataclass(frozen=True)
class TestbedConfig:
    """Everything that determines a trained test-bed model."""

    seed: int = 0
    steps: int = 4500
    """Optimiser steps in all, the warm-up and the generic-only pretraining included."""
    induction_warmup_steps: int = 1500
    """First steps on copy sequences alone (`saekit.zoo.train.induction_warmup_batch`: a random
    sequence and a repeat of it from a random word, loss on the repeat). Induction heads form in
    about 1500 of them; on generic text alone, with half or all of it copy documents, they had
    not formed after 3000 or 2000 steps (docs/testbed.md). The induction task's roles are then
    placed on the heads that do them (`place_by_attention`)."""
    induction_warmup_batch: int = 64
    induction_two_back: int = 0
    """Warm-up sequences per warm-up step whose repeat is their last two words (``... A B A`` →
    ``B``, from ``induction_two_back_min_length`` words), on top of ``induction_warmup_batch``,
    as toy-4l's warm-up has them (`saekit.zoo.train.TrainingConfig.induction_two_back`). Off by
    default. Without them the warm-up leaves the induction pairs whose answer is one word back
    in long prompts unanswered; with 16 of them and 2,000 warm-up steps most of those pairs
    were answered (1,500 were too few: they slow induction's forming; docs/testbed.md)."""
    induction_two_back_min_length: int = 9
    pretrain_steps: int = 0
    """Steps on generic text alone after the warm-up, before the tasks and their interchange
    losses join."""
    generic_documents: int = 64
    generic_length: int = 32
    """Generic documents per step and their length in tokens (BOS included; next-token loss on
    every position). Short documents: induction heads form in a time that grows about with the
    square of the context length (testbed.md §3)."""
    generic_sentence_kinds: dict[str, float] = field(default_factory=dict)
    """Relative frequencies of the generic text's sentence kinds where they differ from
    `saekit.zoo.language.SENTENCE_KINDS`, e.g. ``{"task": 0}``: generic text without the task
    instances, whose answers the next-token loss would otherwise train through any head,
    outside the reach of the interchange and strictness losses."""
    task_phases: tuple[tuple[tuple[str, ...], int], ...] = ()
    """Phases at the start of the task phase, in order, each (tasks, steps): only those tasks'
    losses train for those steps (beside the generic text unless ``phase_generic`` is off); then
    every task trains. A mechanism that forms late, as docstring's does (docs/testbed.md), gets a
    larger share of the task gradient for a while; a task that shares a head with it (the
    induction task, with ``docstring_mover_on_induction_head``) can train beside it."""
    phase_behaviour_only: tuple[str, ...] = ()
    """Tasks that train their behaviour loss only (no interchange, no strictness) while they are
    in one of ``task_phases``, and all three after: kept beside a task whose circuit forms in the
    phase without asking the heads they share to carry their own variables yet. Their zero losses
    still count in the phase's mean over tasks, so the other tasks' weights do not change."""
    phase_generic: bool = True
    """Whether the generic text trains beside the tasks of ``task_phases``. Docstring alone after
    the warm-up, its mover on the induction head, was learned through its circuit in 1,500 steps
    without generic text and not at all beside 16 or 64 generic documents per step
    (docs/testbed.md)."""
    restart_optimizer: bool = False
    """A new optimizer when the tasks join (`tasks_start`): AdamW's moment estimates from the
    warm-up are dropped and the learning rate warms up again over ``warmup_steps``. Docstring
    alone after the warm-up, with a new optimizer, was learned through its circuit at seed 0
    (`benchmarks/testbed_one_task.py`). In full runs with docstring in a phase beside the
    induction task the optimizer mattered at seed 0 (learned through its circuit with a new one,
    by heads outside it without) and not at seed 2 (through its circuit either way);
    docs/testbed.md."""
    docstring_mover_on_induction_head: bool = False
    """Docstring's argument mover is the head the warm-up made an induction head (shared with
    the induction task's circuit) instead of a head drawn in layer 1. The mover finds the
    argument whose predecessor was documented last, an induction head's match one word apart;
    trained alone after the warm-up, docstring's drawn circuit did not learn it while the
    induction heads did (docs/testbed.md)."""
    ioi_on_induction_heads: bool = False
    """IOI's circuit also holds the induction circuit's previous-token and induction heads
    (shared), as GPT-2's IOI circuit holds previous-token and induction heads beside its
    duplicate-token heads (Wang et al. 2022): an IOI prompt repeats a name, and with those heads
    outside IOI's circuit they were among its largest single-head effects outside it in eight of
    nine runs (docs/testbed.md, "Where IOI's largest outside effects sit")."""
    docstring_on_previous_token_head: bool = False
    """Docstring's circuit also holds the induction circuit's previous-token head (shared): in
    four of six runs with IOI's shared heads (seeds 0-2, with and without the log-odds on every
    task), that head was docstring's largest single-head effect outside its circuit
    (docs/testbed.md, "Docstring's circuit holding the previous-token head")."""
    fixed_circuits: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """Per task, the heads of its roles in role order (`role_names`; IOI's without the heads that
    ``ioi_on_induction_heads`` shares), each stage in the layer of its index, instead of drawn or
    placed by attention; the other tasks are drawn around them. For experiments on placement, as
    whether a seed's drawn head is what keeps a task from being learned (docs/testbed.md, "Full
    runs with the S-inhibition role moved")."""
    ioi_negative: str = "subject"
    """What IOI's negative replaces by a third name (`saekit.tasks.toy.TOY_NEGATIVES`): the
    subject's first occurrence, as the paper does, or the giver, so that the negative keeps IO
    and S in its first clause and IO − S is at chance by symmetry. With the paper's, the
    negative's S is the giver, whom no text of the generic language makes the recipient, and a
    negative target that gives S a third of the mass asks for what nothing else teaches
    (docs/testbed.md, "IOI's negative with the giver replaced"). Recorded in the saved
    tokenizer, so the tasks of `saekit.tasks.make_task` for the model take it too."""
    induction_negative: str = "repeat"
    """What induction's negative replaces by fresh words (`saekit.tasks.toy.TOY_NEGATIVES`): the
    repeat, as every toy model does, or the repeated words' first occurrence and the answer after
    them (``"stretch"``). With the repeat replaced the sequence is the positive's, so the
    previous-token head's writes on it, which the induction head reads, are the positive's too,
    and patching that head from the negative changes next to nothing (docs/testbed.md,
    "Induction's negative"). Recorded in the saved tokenizer, as ``ioi_negative``."""
    pairs_per_task: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASK_NAMES, 12))
    """Pairs of each task per step (each gives a positive and a negative)."""
    task_group_size: int = 4
    """Pairs of one template and length in a row of each task batch (`grouped_pairs`): the
    interchange partners and means are taken among them."""
    iit_weight: float = 1.0
    iit_negative_share: float = 0.5
    """Share of interchange rows that take every circuit head from the negative side (the
    others take the last role from another positive). Swapping a single upstream role from the
    negative is not trained: on greater-than alone it kept the task from being learned at all
    (docs/testbed.md)."""
    strict_weight: float = 1.0
    strict_toward_clean: bool = False
    """Strictness asks the patched output to match the clean one (its distribution, detached)
    instead of the task's answer, so a head whose removal makes the answer *more* certain is
    penalised too."""
    strict_logits: bool = False
    """Strictness asks the patched model's logits to match the clean model's (detached) over the
    tokens a task's answer is chosen among (`TrainingBatch.candidates`: its answers, wrong answers
    and the negative's options), each position's centred on their mean there (the squared
    difference, averaged over those tokens), instead of a cross-entropy. A cross-entropy
    stops pulling once the answer is certain, so a circuit alone could give several times the
    clean logit difference (IOI's overshoot) and a head outside a fifth of it (docs/testbed.md,
    "Strictness that does not saturate"). Implies strictness toward the clean output."""
    strict_log_odds: tuple[str, ...] = ()
    """The tasks whose strictness adds, to its cross-entropy toward the task's answer, the Huber
    loss (squared up to 1, linear beyond) between the patched and the clean model's (detached)
    log-odds of the answers against the wrong answers at the final position (`answer_log_odds`;
    IOI's is its metric, the others' move with theirs), so that the patched metric stays where
    the clean one is even once the answer is certain (see ``strict_logits``). Per task: with it on
    every task (and ``ioi_on_induction_heads``) greater-than's accuracy was 0.65, 0.62, 0.44 at
    seeds 0-2, with it on the others 0.95, 0.88, 0.32 (docs/testbed.md)."""
    strict_subsets: bool = False
    """Each strictness row patches a random subset of the heads outside the circuit (each head
    with a probability drawn per row) instead of all of them, so that heads outside are asked to
    change nothing one at a time too, as the card's largest effect outside measures them."""
    strict_subset_share: float = 1.0
    """With ``strict_subsets``, the share of strictness rows that patch a subset; the others patch
    every head outside, as the circuit's faithfulness asks. Subsets alone let a head outside
    carry docstring and induction (docs/testbed.md, "Strictness that does not saturate")."""
    strict_one_head_share: float = 0.0
    """The share of strictness rows that patch one head outside the circuit, drawn per row,
    instead of all of them (or a subset): InterpBench's SIIT resamples one node outside the
    circuit at a time, and the card's largest effect outside measures heads one at a time, where
    a head's effect can be cancelled by another's when all are patched together. What half the
    rows gave at seeds 0 and 1: docs/testbed.md, "One head outside at a time"."""
    strict_one_head_beside: bool = False
    """The rows that patch one head outside (``strict_one_head_share`` of the pairs) come beside
    the strictness rows, as more rows of the same prompts and sources, instead of taking their
    place, so every pair keeps its row that patches every head outside (the circuit's
    faithfulness): with half the rows taken, greater-than's circuit alone lost its task in a
    seed-0 run (docs/testbed.md, "One head outside at a time")."""
    strict_one_head_adaptive: float = 0.0
    """The share of the one-head rows' draw that follows each outside head's measured effect
    (`measured_outside_effects`, on fresh training pairs every ``OUTSIDE_EFFECTS_EVERY`` steps), the rest
    uniform over the heads outside: the heads whose patching moves the answer most, which the
    card's largest effect outside reads, are asked most often to change nothing."""
    answer_smoothing: dict[str, float] = field(default_factory=lambda: {"greater-than": 0.05})
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 150
    cooldown_steps: int = 1500
    """Last steps, over which the learning rate falls linearly to zero (0: constant to the end).
    At seed 0 it raised accuracy on every task (greater-than 0.70 -> 0.88; docs/testbed.md)."""
    grad_clip: float = 1.0
    eval_every: int = 250
    model: ToyModelConfig = field(default_factory=lambda: ToyModelConfig(d_vocab=len(TESTBED_VOCABULARY)))

    def __post_init__(self) -> None:
        """Refuse, before any training, a shape without room for the circuits, a run that would
        end before the tasks join (a model without circuits), pair counts that miss a task, task
        batches that cannot come in runs of ``task_group_size`` and answer smoothing for a task
        that does not exist."""
        _check_room(self.model.n_layers, self.model.n_heads)
        check_pairs_per_task(self.pairs_per_task)
        _check_group_size(self.task_group_size, min(self.pairs_per_task.values()))
        check_answer_smoothing(self.answer_smoothing)
        check_negatives(self.negatives)
        check_sentence_kinds(self.generic_sentence_kinds)
        object.__setattr__(self, "task_phases", _checked_phases(self.task_phases))
        object.__setattr__(self, "strict_log_odds", _checked_tasks("strict_log_odds", self.strict_log_odds))
        object.__setattr__(
            self, "phase_behaviour_only", _checked_tasks("phase_behaviour_only", self.phase_behaviour_only)
        )
        object.__setattr__(self, "fixed_circuits", _checked_fixed_circuits(self.fixed_circuits, self.model))
        if self.strict_logits and self.strict_toward_clean:
            raise SaekitError(
                "strict_logits already matches the patched output to the clean one: leave strict_toward_clean off."
            )
        for name in ("strict_subset_share", "strict_one_head_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SaekitError(f"{name} is a share of the strictness rows, in [0, 1]; got {getattr(self, name)}.")
        if self.strict_subset_share != 1.0 and not self.strict_subsets:
            raise SaekitError(
                f"strict_subset_share ({self.strict_subset_share}) is the share of rows patching a subset when "
                "strict_subsets is on, and it is off: turn strict_subsets on, or leave the share at 1."
            )
        if not 0.0 <= self.strict_one_head_adaptive <= 1.0:
            raise SaekitError(
                f"strict_one_head_adaptive is a share of the one-head draw, in [0, 1]; got {self.strict_one_head_adaptive}."
            )
        for name in ("strict_one_head_beside", "strict_one_head_adaptive"):
            if getattr(self, name) and self.strict_one_head_share == 0:
                raise SaekitError(
                    f"{name} acts on the one-head rows of strict_one_head_share, which is 0 (no row): "
                    f"set strict_one_head_share above 0, or leave {name} off."
                )
        if self.cooldown_steps < 0:
            raise SaekitError(f"cooldown_steps must be 0 (no cooldown) or more, got {self.cooldown_steps}.")
        if self.steps <= self.phases_end:
            raise SaekitError(
                f"steps ({self.steps}) must exceed the warm-up, pretraining and task-phase steps ({self.phases_end}): "
                "every task and its circuit joins only after them. Raise steps or lower the warm-up / pretraining / "
                "task_phases steps."
            )

    @property
    def tasks_start(self) -> int:
        """The step at which the tasks, their circuits and the interchange losses join."""
        return self.induction_warmup_steps + self.pretrain_steps

    @property
    def phases_end(self) -> int:
        """The step at which `task_phases` end and every task trains."""
        return self.tasks_start + sum(steps for _, steps in self.task_phases)

    def tasks_training(self, step: int) -> tuple[str, ...]:
        """The tasks whose losses train at ``step``: none before `tasks_start`, then the tasks of
        each of ``task_phases`` for its steps, then all of them."""
        if step < self.tasks_start:
            return ()
        offset = step - self.tasks_start
        for tasks, steps in self.task_phases:
            offset -= steps
            if offset < 0:
                return tasks
        return TASK_NAMES

    @property
    def negatives(self) -> dict[str, str]:
        """Each task's negative where it has a choice (`saekit.tasks.toy.TOY_NEGATIVES`)."""
        return {"ioi": self.ioi_negative, "induction": self.induction_negative}

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}


class CopyHeadScores(NamedTuple):
    """Mean attention of each head (n_layers × n_heads) to what a copying role attends to."""

    previous: Float[Tensor, "n_layers n_heads"]
    """From a word to the one before it."""
    duplicate: Float[Tensor, "n_layers n_heads"]
    """From a repeated word to its previous occurrence."""
    induction: Float[Tensor, "n_layers n_heads"]
    """From a repeated word to the word after its previous occurrence."""


def copy_head_scores(model: AttnOnlyTransformer, tokens: Int[Tensor, "batch seq"]) -> CopyHeadScores:
    """Each head's previous-token, duplicate-token and induction score on ``tokens``
    (BOS-prefixed rows without padding, with repeats)."""
    patterns = model.attention_patterns(tokens.to(model.device)).cpu().transpose(1, 2)  # layer, head, batch, query, key
    positions = torch.arange(tokens.shape[1])
    earlier_same = (tokens[:, :, None] == tokens[:, None, :]) & (positions[None, :] < positions[:, None])
    previous_occurrence = (earlier_same * positions).argmax(-1)  # the most recent one
    rows, queries = earlier_same.any(-1).nonzero(as_tuple=True)
    occurrence = previous_occurrence[rows, queries]
    return CopyHeadScores(
        previous=patterns[..., positions[2:], positions[1:-1]].mean((-2, -1)),
        duplicate=patterns[..., rows, queries, occurrence].mean(-1),
        induction=patterns[..., rows, queries, occurrence + 1].mean(-1),
    )


def place_by_attention(
    model: AttnOnlyTransformer, tokens: Int[Tensor, "batch seq"], taken: frozenset[tuple[int, int]] = frozenset()
) -> list[tuple[int, int, str]]:
    """The induction task's roles on the heads that already do them, in the layers of its stages
    (`draw_circuits`), among the heads not ``taken`` by another task: in layer 0 the highest
    previous-token score and, among the other heads, the highest duplicate-token score; in layer
    1 the highest induction score."""
    scores = copy_head_scores(model, tokens)

    def best(layer: int, score: Tensor, also_taken: tuple[int, ...] = ()) -> int:
        free = score.clone()
        free[[head for head in range(len(free)) if (layer, head) in taken or head in also_taken]] = -1.0
        return int(free.argmax())

    previous = best(0, scores.previous[0])
    return [
        (0, previous, "previous-token"),
        (0, best(0, scores.duplicate[0], (previous,)), "duplicate-token"),
        (1, best(1, scores.induction[1]), "induction"),
    ]


def place_circuits(
    model: AttnOnlyTransformer,
    tokenizer,
    seed: int,
    mover_on_induction_head: bool = False,
    ioi_on_induction_heads: bool = False,
    fixed: dict[str, tuple[tuple[int, int], ...]] | None = None,
    n_documents: int = 64,
    docstring_on_previous_token_head: bool = False,
) -> Circuits:
    """Every task's circuit: the tasks in ``fixed`` on the heads given there (in role order), the
    induction roles where the model's attention already does them (`place_by_attention`, on copy
    documents) unless fixed, the others drawn around them (`draw_circuits`); with
    ``mover_on_induction_head``, docstring's argument mover is the induction head; with
    ``ioi_on_induction_heads`` IOI's circuit holds the induction circuit's previous-token and
    induction heads too, and with ``docstring_on_previous_token_head`` docstring's holds its
    previous-token head, each in the stage of its layer (the circuits share them)."""
    placed = {task: [(*head, role) for head, role in zip(heads, role_names(task))] for task, heads in (fixed or {}).items()}
    if "induction" not in placed:
        rng = np.random.default_rng([seed, 8])
        copies = document_tokens(tokenizer, [copy_document(rng, 31) for _ in range(n_documents)])
        taken = frozenset((layer, head) for heads in placed.values() for layer, head, _ in heads)
        placed["induction"] = place_by_attention(model, copies, taken)
    circuits = draw_circuits(model.cfg.n_layers, model.cfg.n_heads, seed, fixed=placed)
    induction = circuits["induction"]
    if mover_on_induction_head:
        layer, head, _ = induction[-1]
        circuits["docstring"] = [*circuits["docstring"][:-1], (layer, head, "argument-mover")]
    if ioi_on_induction_heads:
        shared = [head for head in induction if head[2] != "duplicate-token"]
        circuits["ioi"] = sorted(circuits["ioi"] + shared, key=lambda head: head[0])  # the name mover stays last
    if docstring_on_previous_token_head:
        circuits["docstring"] = sorted(circuits["docstring"] + induction[:1], key=lambda head: head[0])  # the mover stays last
    return circuits


def document_tokens(tokenizer, documents: list[list[str]]) -> Int[Tensor, "n_documents length"]:
    """BOS + the words of each document (all of one length) as token ids."""
    return torch.tensor([[tokenizer.bos_token_id, *tokenizer.convert_tokens_to_ids(words)] for words in documents])


def generic_batch(tokenizer, config: TestbedConfig, step: int) -> Int[Tensor, "n_documents length"]:
    """The recipe's generic text at ``step``: ``config.generic_documents`` rows of BOS +
    ``generic_length - 1`` words with its sentence kinds, seeded by its seed and the step."""
    documents = generic_documents(
        config.generic_documents, config.generic_length - 1, _step_seed(config.seed, step, 98), config.generic_sentence_kinds
    )
    return document_tokens(tokenizer, documents)


def generic_loss(model: AttnOnlyTransformer, tokens: Int[Tensor, "n_documents length"]) -> Tensor:
    """Next-token cross-entropy on every position of generic documents (`generic_batch`)."""
    return F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())


def _soft_cross_entropy(logits: Float[Tensor, "batch seq vocab"], targets: Float[Tensor, "batch seq vocab"]) -> Tensor:
    trained = targets.sum(-1) > 0
    return -(targets * logits.log_softmax(-1)).sum(-1)[trained].mean()


def answer_log_odds(logits: Float[Tensor, "n seq vocab"], answer_signs: Float[Tensor, "n seq vocab"]) -> Float[Tensor, " n"]:
    """Per row, log of the probability on the answers over that on the wrong answers, at the
    position where ``answer_signs`` marks them (+1 answers, -1 wrong; `TrainingBatch.answer_signs`)."""
    position = answer_signs.abs().sum(-1).argmax(-1)
    final_logits, signs = (t[torch.arange(len(t)), position] for t in (logits, answer_signs))
    answers, wrong = (final_logits.masked_fill(~mask, float("-inf")).logsumexp(-1) for mask in (signs > 0, signs < 0))
    return answers - wrong


def candidate_logit_distance(
    logits: Float[Tensor, "n seq vocab"], reference: Float[Tensor, "n seq vocab"], candidates: Float[Tensor, "n seq vocab"]
) -> Tensor:
    """Mean over positions with candidates of the mean squared difference between ``logits`` and
    ``reference`` over the candidate tokens, each centred on its mean over them: zero exactly when
    every difference between two candidates' logits is the same in both."""
    def centred(values: Tensor) -> Tensor:
        return values - (values * candidates).sum(-1, keepdim=True) / counts

    counts = candidates.sum(-1, keepdim=True).clamp(min=1)
    squared = ((centred(logits) - centred(reference)) ** 2 * candidates).sum(-1) / counts[..., 0]
    return squared[candidates.sum(-1) > 0].mean()


def same_template_partners(keys: Int[Tensor, " n"], generator: torch.Generator) -> Int[Tensor, " n"]:
    """For each prompt, a random other prompt with the same key (template and length); itself if none."""
    others = (keys[:, None] == keys[None, :]) & ~torch.eye(len(keys), dtype=torch.bool)
    weights = others.float() + (~others.any(1))[:, None] * torch.eye(len(keys))
    return torch.multinomial(weights, 1, generator=generator)[:, 0]


def task_losses(
    model: AttnOnlyTransformer,
    batch: TrainingBatch,
    template_keys: Int[Tensor, " n_pairs"],
    circuit: list[tuple[int, int, str]],
    generator: torch.Generator,
    negative_share: float = TestbedConfig.iit_negative_share,
    strict_toward_clean: bool = False,
    strict_logits: bool = False,
    strict_log_odds: bool = False,
    subset_share: float = 0.0,
    one_head_share: float = 0.0,
    one_head_beside: bool = False,
    one_head_weights: Float[Tensor, "n_layers n_heads"] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Behaviour, interchange and strictness losses of one task batch (rows: pos, neg, pos, ...).

    ``template_keys`` groups pairs whose prompts align position by position (same template and
    length); sources of interchanges are taken within a group only. The random choices are drawn
    on the CPU from ``generator`` whatever the model's device, so they do not depend on it.
    ``subset_share`` is the share of strictness rows that patch a random subset of the heads
    outside the circuit instead of all of them (``strict_subsets``, ``strict_subset_share``);
    ``one_head_share`` the share that patch one of those heads, drawn per row
    (``strict_one_head_share``), whatever the subset draw gave them, with chances proportional to
    ``one_head_weights`` (uniform when None); with ``one_head_beside``, those rows are added as
    copies of the strict rows of their pairs instead.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    resid, _, zs = model.run_layers(batch.tokens)
    logits = model.unembed_residual(resid)
    behaviour = _soft_cross_entropy(logits, batch.targets)

    n_pairs, device = len(template_keys), batch.tokens.device
    positive_rows, negative_rows = torch.arange(0, 2 * n_pairs, 2, device=device), torch.arange(1, 2 * n_pairs, 2, device=device)
    same = template_keys[:, None] == template_keys[None, :]
    group_mean = (same.float() / same.sum(1, keepdim=True)).to(device)
    partner = same_template_partners(template_keys, generator)
    has_partner = partner != torch.arange(n_pairs)
    in_circuit = circuit_mask(circuit, n_layers, n_heads)
    last_layer, last_head, _ = circuit[-1]

    # Strict rows: every non-circuit head from the paired negative, a same-template row, or the mean.
    # IIT rows: (a) all circuit heads from the negative side -> the negative's output;
    # (b) the last role from another positive -> that positive's output.
    strict_source = torch.randint(3, (n_pairs,), generator=generator)
    iit_follows_partner = (torch.rand(n_pairs, generator=generator) >= negative_share) & has_partner
    iit_mean = torch.rand(n_pairs, generator=generator) < 0.5
    # Per strict row, the chance that each outside head is patched: drawn in a subset_share of the
    # rows, 1 (every head) in the others.
    patch_chance = torch.rand(n_pairs, 1, generator=generator) if subset_share > 0 else None
    if patch_chance is not None and subset_share < 1.0:
        patch_chance[torch.rand(n_pairs, generator=generator) >= subset_share] = 1.0
    # Per strict row, one head outside drawn (``picked_head``), patched alone in a one_head_share of the rows.
    one_head_rows = None
    if one_head_share > 0:
        weights = (~in_circuit).float() if one_head_weights is None else one_head_weights.masked_fill(in_circuit, 0.0)
        picked = torch.multinomial(weights.flatten().expand(n_pairs, -1), 1, generator=generator)[:, 0]
        picked_head = F.one_hot(picked, n_layers * n_heads).bool().view(n_pairs, n_layers, n_heads)
        one_head_rows = torch.rand(n_pairs, generator=generator) < one_head_share
    # The pair each strictness row patches: every pair once, and the one-head pairs again when beside.
    beside = one_head_rows is not None and one_head_beside
    added = one_head_rows.nonzero()[:, 0] if beside else torch.zeros(0, dtype=torch.long)
    strict_pairs = torch.cat([torch.arange(n_pairs), added])
    # The same choices on the model's device, moved once for every layer.
    source_partner, follows_partner, take_mean = (t.to(device) for t in (partner, iit_follows_partner, iit_mean))
    patches = []
    for layer in range(n_layers):
        z = zs[layer].detach()
        z_pos, z_neg = z[positive_rows], z[negative_rows]
        z_neg_mean = torch.einsum("ij,jpae->ipae", group_mean, z_neg)
        from_positive = (torch.rand(n_pairs, generator=generator) < 0.5).to(device)
        z_random_row = torch.where(from_positive[:, None, None, None], z_pos, z_neg)[source_partner]
        strict_z = torch.stack([z_neg, z_random_row, z_neg_mean])[strict_source.to(device), torch.arange(n_pairs, device=device)]
        strict_heads = (~in_circuit[layer]).expand(n_pairs, n_heads)
        if patch_chance is not None:
            strict_heads = strict_heads & (torch.rand(n_pairs, n_heads, generator=generator) < patch_chance)
        if beside:
            strict_z = torch.cat([strict_z, strict_z[added.to(device)]])
            strict_heads = torch.cat([strict_heads, picked_head[added, layer]])
        elif one_head_rows is not None:
            strict_heads = torch.where(one_head_rows[:, None], picked_head[:, layer], strict_heads)

        negative_side = torch.where(take_mean[:, None, None, None], z_neg_mean, z_neg)
        iit_z = torch.where(follows_partner[:, None, None, None], z_pos[source_partner], negative_side)
        chosen = in_circuit[layer].expand(n_pairs, n_heads) & ~iit_follows_partner[:, None]
        if layer == last_layer:
            chosen[iit_follows_partner, last_head] = True
        patches.append(ZPatch(torch.cat([strict_z, iit_z]), torch.cat([strict_heads, chosen]).to(device)))

    n_strict, strict_rows = len(strict_pairs), positive_rows[strict_pairs.to(device)]
    tokens = torch.cat([batch.tokens[strict_rows], batch.tokens[positive_rows]])
    patched_logits = model.unembed_residual(model.run_layers(tokens, patches)[0])
    iit_targets = torch.where(
        follows_partner[:, None, None], batch.targets[positive_rows][source_partner], batch.targets[negative_rows]
    )
    iit = _soft_cross_entropy(patched_logits[n_strict:], iit_targets)
    strict_output, clean = patched_logits[:n_strict], logits[strict_rows].detach()
    if strict_logits:
        if batch.candidates is None:
            raise SaekitError("strict_logits needs a batch with its candidates: `pairs_batch(..., answer_sets=True)`.")
        strict = candidate_logit_distance(strict_output, clean, batch.candidates[strict_rows])
    elif strict_toward_clean:  # the clean output's distribution, at the positions the task trains
        trained = batch.targets[strict_rows].sum(-1, keepdim=True) > 0
        strict = _soft_cross_entropy(strict_output, clean.softmax(-1) * trained)
    else:
        strict = _soft_cross_entropy(strict_output, batch.targets[strict_rows])
    if strict_log_odds:
        if batch.answer_signs is None:
            raise SaekitError("strict_log_odds needs a batch with its answer signs: `pairs_batch(..., answer_sets=True)`.")
        signs = batch.answer_signs[strict_rows]
        strict = strict + F.huber_loss(answer_log_odds(strict_output, signs), answer_log_odds(clean, signs))
    return behaviour, iit, strict


def recipe_task_losses(
    model: AttnOnlyTransformer, config: TestbedConfig, task: str, batch: TrainingBatch, template_keys: Int[Tensor, " n_pairs"],
    circuit: list[tuple[int, int, str]], generator: torch.Generator,
    one_head_weights: Float[Tensor, "n_layers n_heads"] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """`task_losses` of ``task``'s batch with the interchange and strictness settings ``config``
    gives it (and the one-head draw's weights of `one_head_draw_weights`)."""
    return task_losses(
        model, batch, template_keys, circuit, generator, config.iit_negative_share, config.strict_toward_clean,
        config.strict_logits, task in config.strict_log_odds, config.strict_subset_share if config.strict_subsets else 0.0,
        config.strict_one_head_share, config.strict_one_head_beside, one_head_weights,
    )


@torch.no_grad()
def outside_head_effects(
    model: AttnOnlyTransformer, batch: TrainingBatch, circuit: list[tuple[int, int, str]]
) -> Float[Tensor, "n_layers n_heads"]:
    """Per head outside ``circuit``, how far patching its z alone from the paired negative moves
    the answers' log-odds on the batch's positives (`answer_log_odds`, mean over pairs, absolute),
    as a share of the log-odds gap between positives and negatives; 0 on the circuit's heads.
    The card's largest effect outside measures the same on its own pairs, in the task's metric
    (IOI's is these log-odds; the others' move with them)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    n_total = n_layers * n_heads
    positives, negatives, signs = batch.tokens[0::2], batch.tokens[1::2], batch.answer_signs[0::2]
    clean = answer_log_odds(model.unembed_residual(model.run_layers(positives)[0]), signs)
    negative_resid, _, negative_z = model.run_layers(negatives)
    gap = clean.mean() - answer_log_odds(model.unembed_residual(negative_resid), signs).mean()
    # Rows in blocks of one head each: block k patches head k alone in every pair.
    one_head = torch.eye(n_total, dtype=torch.bool, device=positives.device).repeat_interleave(len(positives), 0)
    patches = [ZPatch(z.repeat(n_total, 1, 1, 1), heads) for z, heads in zip(negative_z, one_head.view(-1, n_layers, n_heads).unbind(1))]
    patched_resid = model.run_layers(positives.repeat(n_total, 1), patches)[0]
    patched = answer_log_odds(model.unembed_residual(patched_resid), signs.repeat(n_total, 1, 1)).view(n_total, -1)
    effects = ((patched - clean).mean(1).abs() / gap.abs().clamp_min(torch.finfo(gap.dtype).tiny)).view(n_layers, n_heads).cpu()
    return effects.masked_fill(circuit_mask(circuit, n_layers, n_heads), 0.0)


#: Steps between measurements of the heads' effects outside (`measured_outside_effects`): logged,
#: and the one-head draw's weights for ``strict_one_head_adaptive``.
OUTSIDE_EFFECTS_EVERY = 250


def measured_outside_effects(
    model: AttnOnlyTransformer, tokenizer, config: TestbedConfig, circuits: Circuits, step: int, device: torch.device | str
) -> dict[str, Float[Tensor, "n_layers n_heads"]]:
    """Per task, `outside_head_effects` on fresh training pairs (seeded by ``step``, never the
    card's): the training run's own view of the card's largest effect outside."""
    effects = {}
    for i, (task, circuit) in enumerate(circuits.items()):
        batch, _ = _task_batch(tokenizer, task, config, _step_seed(config.seed, step, 90 + i), device, answer_sets=True)
        effects[task] = outside_head_effects(model, batch, circuit)
    return effects


def largest_outside_summary(effects: dict[str, Float[Tensor, "n_layers n_heads"]], idle: tuple[str, ...] = ()) -> str:
    """Each task's largest measured effect outside and its head, for the training log; the
    ``idle`` tasks (placed, but their losses not training at this step: shares of the small gap
    of a task not yet learned mean little) are marked so."""
    parts = []
    for task, task_effects in effects.items():
        layer, head = divmod(int(task_effects.argmax()), task_effects.shape[1])
        parts.append(f"{task} {task_effects.max():.3f} ({layer}.{head})" + (" idle" if task in idle else ""))
    return "  ".join(parts)


def one_head_draw_weights(
    effects: dict[str, Float[Tensor, "n_layers n_heads"]], circuits: Circuits, config: TestbedConfig
) -> dict[str, Float[Tensor, "n_layers n_heads"]]:
    """Per task, the chances with which the one-head strictness rows draw their head: a
    ``strict_one_head_adaptive`` share by the measured ``effects`` (`measured_outside_effects`),
    the rest uniform over the heads outside; empty (uniform draws) when that share is 0."""
    if not config.strict_one_head_adaptive:
        return {}
    n_layers, n_heads = config.model.n_layers, config.model.n_heads
    weights = {}
    for task, circuit in circuits.items():
        outside = ~circuit_mask(circuit, n_layers, n_heads)
        uniform = outside.float() / outside.sum()
        measured = effects[task] / effects[task].sum() if effects[task].sum() > 0 else uniform
        weights[task] = (1 - config.strict_one_head_adaptive) * uniform + config.strict_one_head_adaptive * measured
    return weights


def logged_draw_weights(
    model: AttnOnlyTransformer, tokenizer, config: TestbedConfig, circuits: Circuits, step: int, device: torch.device | str,
    log=print, idle: tuple[str, ...] = (),
) -> dict[str, Float[Tensor, "n_layers n_heads"]]:
    """Measure the effects outside (`measured_outside_effects`), ``log`` each task's largest
    (``idle`` tasks marked, `largest_outside_summary`), and return the one-head draw's weights
    (`one_head_draw_weights`)."""
    effects = measured_outside_effects(model, tokenizer, config, circuits, step, device)
    log(f"step {step}: largest effect outside, training pairs: {largest_outside_summary(effects, idle)}")
    return one_head_draw_weights(effects, circuits, config)


def _testbed_learning_rate(config: TestbedConfig, step: int) -> float:
    """The toy recipe's warm-up (again from `tasks_start` with ``restart_optimizer``) and constant
    rate, falling linearly to zero over the cooldown."""
    restarted = config.restart_optimizer and step >= config.tasks_start
    rate = _learning_rate(config, step - config.tasks_start if restarted else step)
    if config.cooldown_steps == 0:
        return rate
    return rate * min(1.0, (config.steps - step) / config.cooldown_steps)


def pair_key(pair: ToyPair) -> int:
    """Template and length of a pair: prompts with one key align position by position."""
    return pair.template_id * 1000 + len(pair.positive.split())


def _check_group_size(group_size: int, n_pairs: int) -> None:
    if not 2 <= group_size <= n_pairs:
        raise SaekitError(
            f"task_group_size must be between 2 (a prompt and another of its template) and pairs_per_task "
            f"({n_pairs}), got {group_size}."
        )


def grouped_pairs(task: str, n_pairs: int, group_size: int, seed: int, negative: str | None = None) -> list[ToyPair]:
    """``n_pairs`` pairs of ``task`` in runs of ``group_size`` that share a key (`pair_key`).

    Drawn from a pool of seeded pairs (8 × ``n_pairs``, doubled until it holds enough runs): the
    keys in the order they first appear there (so common keys come first, as often as the task
    draws them), ``group_size`` pairs of each key that has that many; then a second run of each
    key that has that many more, and so on, for a batch that needs more runs than the task has
    keys (ioi has 8, so 36 pairs in runs of 4 take a second run of one key). A batch of freely
    drawn pairs holds one or two of a key (induction has 15 lengths), so a same-key partner or a
    same-key mean is mostly the pair itself, and strictness rarely sees another prompt of the task."""
    _check_group_size(group_size, n_pairs)
    pool_size = 8 * n_pairs
    while True:
        members: dict[int, list[ToyPair]] = {}
        for pair in toy_pairs(task, pool_size, seed, negative):  # a longer pool extends the shorter one
            members.setdefault(pair_key(pair), []).append(pair)
        longest = max(map(len, members.values()))
        runs = [pairs[start : start + group_size] for start in range(0, longest, group_size) for pairs in members.values()]
        picked = [pair for run in runs if len(run) == group_size for pair in run]
        if len(picked) >= n_pairs:
            return picked[:n_pairs]
        pool_size *= 2


def _task_batch(
    tokenizer, task: str, config: TestbedConfig, seed: int, device: torch.device | str, answer_sets: bool = False
) -> tuple[TrainingBatch, Tensor]:
    """One task's training batch on ``device`` and its pairs' keys (`pair_key`, on the CPU), with
    its answer sets when asked or when the config's strictness reads them."""
    pairs = grouped_pairs(task, config.pairs_per_task[task], config.task_group_size, seed, config.negatives.get(task))
    answer_sets = answer_sets or config.strict_logits or task in config.strict_log_odds
    batch = pairs_batch(tokenizer, pairs, config.answer_smoothing.get(task, 0.0), answer_sets)
    return batch.to(device), torch.tensor([pair_key(pair) for pair in pairs])


@torch.no_grad()
def circuit_alone_accuracy(model: AttnOnlyTransformer, task: ContrastiveTask, circuit: list[tuple[int, int, str]]) -> float:
    """Accuracy on ``task``'s positives of ``circuit`` alone: every other head's ``hook_z`` from
    the paired negative. A task can rise in the training log through heads outside its circuit;
    this says whether the circuit carries it, before the card (`saekit zoo check`) is computed."""
    from saekit.zoo.evaluate import accuracy

    device = next(model.parameters()).device
    positives, negatives = task.tokens("positive").to(device), task.tokens("negative").to(device)
    outside = ~circuit_mask(circuit, model.cfg.n_layers, model.cfg.n_heads).to(device)
    negative_z = model.run_layers(negatives)[2]
    patches = [ZPatch(z, heads.expand(len(positives), -1)) for z, heads in zip(negative_z, outside)]
    logits = model.unembed_residual(model.run_layers(positives, patches)[0]).cpu()
    return accuracy(task, task.answer_logits(logits)).mean().item()


@torch.enable_grad()
def train_testbed(
    config: TestbedConfig, log=print, on_eval=None, device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None, checkpoint_every: int = 250,
) -> tuple[AttnOnlyTransformer, Circuits]:
    """Train a test-bed model on ``device``; returns it (on the CPU) and its circuits (roles on heads).

    Data, initial weights and every random choice come from CPU generators seeded by the
    config, so a run depends on the device only through its arithmetic: on the CPU it is
    reproducible bit for bit; on a GPU it follows the same recipe (use it to try recipes, many
    runs at once, and retrain a model that is to be shipped on the CPU).

    With ``checkpoint`` (a file), the training state is saved there every ``checkpoint_every``
    steps, and a run whose checkpoint file exists continues from it (`saekit.zoo.checkpoint`):
    an interrupted run, started again, ends with the weights it would have had."""
    from saekit.zoo.evaluate import EVAL_PAIRS, EVAL_SEED, evaluate_task

    check_device(device)
    if checkpoint_every < 1:
        raise SaekitError(f"checkpoint_every must be 1 or more steps, got {checkpoint_every}.")
    tokenizer = build_toy_tokenizer(TESTBED_VOCABULARY, config.negatives)
    model = AttnOnlyTransformer(config.model, seed=config.seed).to(device)
    circuits: Circuits = {}
    new_optimizer = partial(torch.optim.AdamW, list(model.parameters()), lr=config.lr, weight_decay=config.weight_decay)
    optimizer = new_optimizer()
    history = []
    eval_tasks = {name: make_task(name, tokenizer, EVAL_PAIRS, EVAL_SEED) for name in TASK_NAMES}
    draw_weights: dict[str, Tensor] = {}
    saved = load_training_state(checkpoint, config) if checkpoint is not None else None
    if saved is not None:
        try:
            model.load_state_dict(saved.model)
            optimizer.load_state_dict(saved.optimizer)
        except (RuntimeError, ValueError, KeyError) as err:
            raise SaekitError(
                f"{checkpoint}'s weights do not fit this model ({type(err).__name__}: {str(err)[:200]}); it was written by "
                "another saekit. Delete it to train from step 0."
            ) from None
        circuits, history = saved.circuits, saved.history
        draw_weights = {task: weights.to(device) for task, weights in saved.draw_weights.items()}
        log(f"resuming at step {saved.step} from {checkpoint}")
    for step in range(saved.step if saved is not None else 0, config.steps):
        if step == config.tasks_start:
            circuits = place_circuits(
                model, tokenizer, config.seed, config.docstring_mover_on_induction_head, config.ioi_on_induction_heads,
                config.fixed_circuits, docstring_on_previous_token_head=config.docstring_on_previous_token_head,
            )
            log(f"step {step}: circuits {circuits}")
            if config.restart_optimizer:
                optimizer = new_optimizer()
        for group in optimizer.param_groups:
            group["lr"] = _testbed_learning_rate(config, step)
        generator = torch.Generator().manual_seed(_step_seed(config.seed, step, 99))
        behaviour = iit = strict = generic = torch.zeros(())
        training = config.tasks_training(step)
        in_phase = config.tasks_start <= step < config.phases_end
        if step < config.induction_warmup_steps:
            warmup = induction_warmup_batch(
                tokenizer, config.induction_warmup_batch, 3, 24, _step_seed(config.seed, step, 97),
                config.induction_two_back, config.induction_two_back_min_length,
            ).to(device)
            generic = _soft_cross_entropy(model(warmup.tokens), warmup.targets)
        elif config.phase_generic or not in_phase:
            tokens = generic_batch(tokenizer, config, step).to(device)
            generic = generic_loss(model, tokens)
        if training and (step - config.tasks_start) % OUTSIDE_EFFECTS_EVERY == 0:
            idle = tuple(task for task in circuits if task not in training)
            draw_weights = logged_draw_weights(model, tokenizer, config, circuits, step, device, log, idle)
        if training:
            parts = []
            for i, task in enumerate(TASK_NAMES):
                if task not in training:
                    continue
                batch, keys = _task_batch(tokenizer, task, config, _step_seed(config.seed, step, i), device)
                if in_phase and task in config.phase_behaviour_only:
                    no_loss = torch.zeros((), device=device)
                    parts.append((_soft_cross_entropy(model(batch.tokens), batch.targets), no_loss, no_loss))
                else:
                    parts.append(
                        recipe_task_losses(model, config, task, batch, keys, circuits[task], generator, draw_weights.get(task))
                    )
            behaviour, iit, strict = (torch.stack(p).mean() for p in zip(*parts))
        loss = generic + behaviour + config.iit_weight * iit + config.strict_weight * strict
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        history.append([generic.item(), behaviour.item(), iit.item(), strict.item()])
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < config.steps:
            state = TrainingState(step + 1, model.state_dict(), optimizer.state_dict(), circuits, history, draw_weights)
            save_training_state(checkpoint, state, config)
        if config.eval_every and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
            model.eval()
            scores = {name: evaluate_task(lambda tokens: model(tokens.to(device)).cpu(), task) for name, task in eval_tasks.items()}
            alone = {name: circuit_alone_accuracy(model, eval_tasks[name], placed) for name, placed in circuits.items()}
            model.train()
            recent = np.mean(history[-50:], 0)
            summary = "  ".join(
                f"{name} {s.pos_accuracy:.2f}/{s.neg_metric:+.2f}" + (f"/c{alone[name]:.2f}" if name in alone else "")
                for name, s in scores.items()
            )
            log(f"step {step + 1:5d} generic {recent[0]:.3f} task {recent[1]:.3f} iit {recent[2]:.3f} strict {recent[3]:.3f}  {summary}")
            if on_eval is not None:
                on_eval(step + 1, model)
    return model.eval().cpu(), circuits


def save_testbed(model: AttnOnlyTransformer, config: TestbedConfig, circuits: Circuits, out: str | Path, name: str) -> Path:
    """Write the model in the zoo layout, with ``ground_truth.json`` recording every circuit head's role."""
    out = save_toy_model(
        model, config, out, name, build_toy_tokenizer(TESTBED_VOCABULARY, config.negatives),
        trained_on="a generic synthetic language with the four tasks inside it, circuits imposed by SIIT",
    )
    truth = {
        "model": name,
        "rule": "by construction: strict interchange-intervention training aligned each role with its head",
        "tasks": {
            task: {"heads": [[layer, head] for layer, head, _ in placed], "roles": [role for _, _, role in placed]}
            for task, placed in circuits.items()
        },
    }
    write_json(Path(out) / "ground_truth.json", truth)
    return Path(out)


def recorded_config(model: str | Path) -> TrainingConfig | TestbedConfig:
    """The recipe, shape and settings that a shipped model (by name) or a folder written by
    ``saekit zoo train`` records in its ``config.json``, so that the same command retrains the
    model (``--like``).

    The recipe is the one whose settings the record holds, field for field; anything else (a
    model exported from elsewhere, a record from an older saekit) is refused by name.
    """
    folder = toy_model_dir(str(model)) if str(model) in toy_model_names() else Path(model)
    path, document = folder / CONFIG_FILE, read_zoo_config(folder)
    training = document.get("training")
    if not isinstance(training, dict):
        raise ModelError(f"{path} records no training settings: only folders written by saekit zoo train can be retrained.")
    try:
        shape = ToyModelConfig.from_tl_config(document["tl_config"])
    except KeyError as missing:
        raise ModelError(f"{path}'s tl_config lacks {missing}, part of the model's shape. Write the folder again.") from None
    for recipe in (TestbedConfig, TrainingConfig):
        if set(training) == {f.name for f in fields(recipe)} - {"model"}:
            return recipe(**training, model=shape)
    raise ModelError(
        f"{path}'s training settings are neither the toy recipe's nor the test-bed's (this saekit's fields): "
        "retrain with --recipe and explicit flags instead."
    )
