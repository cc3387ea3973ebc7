"""One task of the test-bed recipe trained alone: does its designated circuit learn it, and how fast?

The full recipe shares each step between generic text and four tasks, and a run takes many
minutes; this trains one task's losses (`saekit.zoo.testbed.recipe_task_losses`: the recipe's
settings, as ``--set`` changes them), with or without generic text beside them, on a model that
has had the recipe's induction warm-up (or none), and prints every ``--every`` steps the
accuracy on positives of the model and of its designated circuit alone (every other head's
``hook_z`` from the paired negative), and the model's metric on positives and on negatives. One
run per ``--pairs`` value. With ``--card``, each run ends with the task's card and the bars it
misses (`saekit.zoo.card`, as ``saekit zoo check`` gives them), under each negative the task can
take (`saekit.tasks.toy.TOY_NEGATIVES`), whichever it was trained on; for induction, first its
accuracy by the answer's distance (`testbed_induction_distance.py`).

::

    python benchmarks/testbed_one_task.py --task docstring --pairs 12 36 --steps 3000
    python benchmarks/testbed_one_task.py --task docstring --losses behaviour --start scratch
    python benchmarks/testbed_one_task.py --task docstring --pairs 36 --set strict_weight=2
    python benchmarks/testbed_one_task.py --task induction --pairs 36 --steps 1500 --card --set 'induction_negative="stretch"'
    python benchmarks/testbed_one_task.py --task induction --pairs 36 --steps 1500 --save /tmp/induction-alone
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import replace

import torch

from saekit.cli.zoo import training_settings
from saekit.errors import SaekitError
from saekit.models import load_model
from saekit.tasks import TASK_NAMES, make_task
from saekit.tasks.ground_truth import ground_truth_roles
from saekit.tasks.toy import TOY_NEGATIVES
from saekit.zoo.card import acceptance_bars, task_card
from saekit.zoo.evaluate import EVAL_PAIRS, EVAL_SEED, evaluate_task
from saekit.zoo.language import TESTBED_VOCABULARY
from saekit.zoo.model import AttnOnlyTransformer
from saekit.zoo.testbed import (
    OUTSIDE_EFFECTS_EVERY, TestbedConfig, _task_batch, _testbed_learning_rate, circuit_alone_accuracy, draw_circuits,
    generic_batch, generic_loss, logged_draw_weights, recipe_task_losses, save_testbed, train_testbed,
)
from saekit.zoo.tokenizer import build_toy_tokenizer
from saekit.zoo.train import _step_seed
from testbed_induction_distance import answer_distances, report_distances


def progress(model: AttnOnlyTransformer, task, circuit) -> str:
    """Accuracy on positives of the model and of the circuit alone (`circuit_alone_accuracy`), and
    the model's metric on positives and on negatives (IOI's positives can be answered without
    reading the repeated name; the gap between the two metrics is what reading it adds:
    docs/testbed.md)."""
    scores = evaluate_task(model, task)
    return (f"accuracy {scores.pos_accuracy:.2f}  circuit alone {circuit_alone_accuracy(model, task, circuit):.2f}  "
            f"metric {scores.pos_metric:+.2f} / {scores.neg_metric:+.2f}")


def print_cards(model: AttnOnlyTransformer, config: TestbedConfig, circuits, task_name: str) -> None:
    """The card of ``task_name`` (its circuit from ``circuits``) and the bars it misses, under each
    of the task's negatives, on the card's pairs (`saekit zoo check`'s)."""
    heads = [(layer, head) for layer, head, _ in circuits[task_name]]
    with tempfile.TemporaryDirectory() as folder:
        hooked = load_model(str(save_testbed(model, config, circuits, folder, "harness")))
        if task_name == "induction":
            report_distances(hooked, ground_truth_roles(folder, "induction"), answer_distances())
    for negative in TOY_NEGATIVES.get(task_name, (None,)):
        tokenizer = build_toy_tokenizer(TESTBED_VOCABULARY, {**config.negatives, task_name: negative} if negative else config.negatives)
        card = task_card(hooked, make_task(task_name, tokenizer, EVAL_PAIRS, EVAL_SEED), heads)
        missed = [bar for bar, met in acceptance_bars({task_name: {**card, "heads": heads}})[task_name].items() if met is False]
        acdc = card["causal_auc"]["acdc"]
        print(f"  card, {negative or 'the'} negative: accuracy {card['pos_accuracy']:.3f}  faithfulness "
              f"{card['faithfulness']['mean']:.2f} / {card['faithfulness']['resample']:.2f}  circuit ablated "
              f"{max(card['faithfulness_circuit_ablated'].values()):.2f}  heads "
              f"{', '.join(f'{effect:.3f}' for effect in card['circuit_head_effects'])}  outside {card['max_effect_outside']:.3f}  "
              f"patching / ACDC AUC {card['causal_auc']['activation_patching']:.2f} / {'—' if acdc is None else f'{acdc:.2f}'}  "
              f"missed: {', '.join(missed) or 'none'}", flush=True)


def train_alone(model, tokenizer, task_name: str, circuit, config: TestbedConfig, behaviour_only: bool, every: int, eval_task):
    """Train ``task_name``'s losses alone for ``config.steps`` steps (the recipe's warm-up and
    cooldown of the learning rate), printing `progress` every ``every`` steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = time.time()
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _testbed_learning_rate(config, step)
        if step % OUTSIDE_EFFECTS_EVERY == 0:
            draw_weights = logged_draw_weights(
                model, tokenizer, config, {task_name: circuit}, step, "cpu", lambda line: print(f"  {line}", flush=True)
            )
        generator = torch.Generator().manual_seed(_step_seed(config.seed, step, 99))
        batch, keys = _task_batch(tokenizer, task_name, config, _step_seed(config.seed, step, 2), "cpu")
        behaviour, iit, strict = recipe_task_losses(
            model, config, task_name, batch, keys, circuit, generator, draw_weights.get(task_name)
        )
        loss = behaviour if behaviour_only else behaviour + config.iit_weight * iit + config.strict_weight * strict
        if config.generic_documents:
            loss = loss + generic_loss(model, generic_batch(tokenizer, config, step))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if (step + 1) % every == 0:
            model.eval()
            report = progress(model, eval_task, circuit)
            model.train()
            print(f"  step {step + 1:5d}  {report}  ({time.time() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=TASK_NAMES, default="docstring")
    parser.add_argument("--pairs", type=int, nargs="+", default=[12], help="pairs of the task per step, one run each")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--losses", choices=["siit", "behaviour"], default="siit",
                        help="the recipe's behaviour + interchange + strictness losses, or behaviour alone")
    parser.add_argument("--start", choices=["warmup", "scratch"], default="warmup",
                        help="after the recipe's induction warm-up (circuits placed as the recipe does), or from "
                             "initial weights (circuits drawn)")
    parser.add_argument("--heads", nargs="+", metavar="LAYER.HEAD",
                        help="the task's circuit heads in role order, instead of where the recipe places them")
    parser.add_argument("--generic", type=int, default=0, metavar="N",
                        help="N generic documents per step beside the task, as in the recipe (default: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--card", action="store_true", help="end each run with the task's card under each of its negatives")
    parser.add_argument("--save", metavar="DIR", help="write the last run's model there in the zoo layout (for `saekit zoo check`)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="settings",
                        help="a recipe setting, as for `saekit zoo train --set` (the warm-up and the task's losses use it)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    try:
        recipe = replace(TestbedConfig(seed=args.seed), **training_settings(args.settings, TestbedConfig()))
    except SaekitError as error:
        parser.error(str(error))
    tokenizer = build_toy_tokenizer(TESTBED_VOCABULARY, recipe.negatives)
    if args.start == "warmup":  # the recipe's warm-up, then one step of every task (where circuits are placed)
        warm = replace(recipe, steps=recipe.tasks_start + 1, cooldown_steps=0, eval_every=0, task_phases=())
        start_model, circuits = train_testbed(warm, log=lambda *_: None)
    else:
        start_model = AttnOnlyTransformer(recipe.model, seed=args.seed)
        circuits = draw_circuits(recipe.model.n_layers, recipe.model.n_heads, args.seed)
    circuit = circuits[args.task]
    if args.heads:
        placed = [tuple(int(part) for part in head.split(".")) for head in args.heads]
        n_layers, n_heads = recipe.model.n_layers, recipe.model.n_heads
        if len(placed) != len(circuit) or not all(0 <= layer < n_layers and 0 <= head < n_heads for layer, head in placed):
            parser.error(f"--heads needs {len(circuit)} heads of the {n_layers} x {n_heads} model for {args.task} "
                         f"({[role for *_, role in circuit]})")
        circuit = [(layer, head, role) for (layer, head), (*_, role) in zip(placed, circuit)]
    eval_task = make_task(args.task, tokenizer, n_pairs=200, seed=0)
    print(f"{args.task} alone ({args.generic} generic documents per step), {args.losses} losses from {args.start}, "
          f"seed {args.seed}, settings {args.settings}; circuit {circuit}; "
          f"the recipe's circuits {circuits}")
    for n_pairs in args.pairs:
        print(f"{n_pairs} pairs per step:")
        config = replace(
            recipe, steps=args.steps, induction_warmup_steps=0, pretrain_steps=0, cooldown_steps=args.steps // 3,
            generic_documents=args.generic, pairs_per_task={**recipe.pairs_per_task, args.task: n_pairs}, task_phases=(),
        )
        model = copy.deepcopy(start_model).train()
        train_alone(model, tokenizer, args.task, circuit, config, args.losses == "behaviour", args.every, eval_task)
        if args.card:
            print_cards(model.eval(), recipe, {**circuits, args.task: circuit}, args.task)
    if args.save:
        print(f"saved to {save_testbed(model, recipe, {**circuits, args.task: circuit}, args.save, 'harness')}")


if __name__ == "__main__":
    main()
