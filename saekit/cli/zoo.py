"""``saekit zoo``: train the shipped toy model, recompute its ground truth, check what it does."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from saekit.cli import positive_int, print_json, set_threads


def register(subparsers) -> None:
    parser = subparsers.add_parser("zoo", help="train, check, export and find the ground truth of zoo-layout models")
    actions = parser.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")

    train = actions.add_parser("train", help="train toy-4l or a test-bed model from scratch (deterministic on CPU)")
    train.add_argument("--recipe", choices=("toy", "testbed"),
                       help="toy: toy-4l's recipe (default); testbed: generic language + circuits imposed by "
                            "strict interchange-intervention training (saekit.zoo.testbed; no model shipped yet)")
    train.add_argument("--like", metavar="MODEL",
                       help="retrain a shipped model or a folder written by this command: the recipe, shape and every "
                            "setting its config.json records (the flags below override them; needs --out)")
    train.add_argument("--out", help="folder to write (default: the shipped toy-4l folder; required for testbed and --like)")
    train.add_argument("--seed", type=int, help="training seed (default: the shipped model's, 0)")
    train.add_argument("--steps", type=positive_int, help="optimiser steps (default: the recipe's)")
    train.add_argument("--warmup-steps", type=int, metavar="N", dest="induction_warmup_steps",
                       help="first steps on copy sequences alone, where induction heads form (default: the recipe's)")
    train.add_argument("--pretrain-steps", type=int, metavar="N",
                       help="testbed: steps on generic text alone before the tasks join (default: the recipe's)")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="settings",
                       help="any other setting of the recipe's config (TrainingConfig or TestbedConfig), VALUE as "
                            "JSON: strict_toward_clean=true, 'answer_smoothing={\"greater-than\": 0.02}', "
                            "'model={\"n_layers\": 6, \"n_heads\": 16}' for the shape; repeatable, the flags above win")
    train.add_argument("--device", default="cpu",
                       help="testbed: where to train, e.g. cuda (default: cpu, reproducible bit for bit; a GPU run "
                            "follows the same recipe with other arithmetic: explore there, ship a CPU retrain)")
    train.add_argument("--checkpoint", metavar="FILE",
                       help="testbed: save the training state to FILE as it trains; if FILE exists, continue the run "
                            "from it (same settings only), ending with the weights of one uninterrupted run; removed "
                            "once the model is saved")
    train.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                       help="steps between the checkpoints of --checkpoint (default: train_testbed's)")
    train.add_argument("--threads", type=positive_int, metavar="N",
                       help="CPU threads for torch (default: torch's own choice, which honours OMP_NUM_THREADS)")
    train.set_defaults(handler=run_train)

    truth = actions.add_parser("ground-truth", help="recompute a toy model's ground_truth.json by patching")
    truth.add_argument("--model", default="toy-4l", help="shipped toy model (default: toy-4l)")
    truth.add_argument("--out", help="file to write (default: the model's ground_truth.json)")
    truth.set_defaults(handler=run_ground_truth)

    export = actions.add_parser(
        "export", help="write any loadable model as a self-contained folder that load_model reads"
    )
    export.add_argument("--model", required=True, help="toy model, TransformerLens name or folder")
    export.add_argument("--out", required=True, help="folder to write (replaced as a whole)")
    export.add_argument("--description", default="", help="one line for config.json and `saekit models`")
    export.set_defaults(handler=run_export)

    check = actions.add_parser("check", help="accuracy and metrics of a zoo model on its four tasks (and a test-bed's card)")
    check.add_argument("--model", default="toy-4l", help="shipped toy model or zoo-layout folder (default: toy-4l)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument(
        "--pairs", type=int, default=None,
        help="prompt pairs per task, at least 2 (default 250); more pairs resolve smaller single-head effects (the card's noise floor)",
    )
    check.set_defaults(handler=run_check)


def run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from saekit._checks import check_device
    from saekit._io import check_file_target, check_folder_target
    from saekit.errors import SaekitError
    from saekit.zoo.testbed import TestbedConfig, recorded_config, save_testbed, train_testbed
    from saekit.zoo.train import DEFAULT_OUT, TrainingConfig, save_toy_model, train_toy_model

    if args.like is not None:
        if args.out is None:
            raise SaekitError(f"saekit zoo train --like {args.like} needs --out FOLDER (a new folder for the retrained model).")
        base = recorded_config(args.like)
    else:
        base = TestbedConfig() if args.recipe == "testbed" else TrainingConfig()
    recipe = "testbed" if isinstance(base, TestbedConfig) else "toy"
    if args.recipe not in (None, recipe):
        raise SaekitError(f"{args.like} was trained by the {recipe} recipe, not --recipe {args.recipe}: drop --recipe.")
    if recipe == "testbed" and args.out is None:
        raise SaekitError("saekit zoo train --recipe testbed needs --out FOLDER (no test-bed model is shipped yet).")
    if recipe == "toy" and args.pretrain_steps is not None:
        raise SaekitError("--pretrain-steps belongs to --recipe testbed; toy-4l's recipe has no pretraining phase.")
    if recipe == "toy" and args.device != "cpu":
        raise SaekitError("--device belongs to --recipe testbed; toy-4l's recipe trains on the CPU only.")
    if recipe == "toy" and (args.checkpoint is not None or args.checkpoint_every is not None):
        raise SaekitError("--checkpoint belongs to --recipe testbed; toy-4l's recipe trains in minutes, from step 0.")
    if args.checkpoint_every is not None and args.checkpoint is None:
        raise SaekitError("--checkpoint-every sets how often --checkpoint FILE is written: add --checkpoint FILE, or drop it.")
    check_device(args.device)
    out = check_folder_target(args.out or DEFAULT_OUT)  # before training, not after
    checkpoint = check_file_target(args.checkpoint) if args.checkpoint is not None else None
    if args.threads is not None:
        set_threads(args.threads)
    overrides = {key: getattr(args, key) for key in ("seed", "steps", "induction_warmup_steps", "pretrain_steps") if getattr(args, key) is not None}
    config = replace(base, **{**training_settings(args.settings, base), **overrides})
    if recipe == "toy":
        model, _ = train_toy_model(config)
        print(f"saved to {save_toy_model(model, config, out)}")
        return 0
    every = {} if args.checkpoint_every is None else {"checkpoint_every": args.checkpoint_every}
    model, circuits = train_testbed(config, device=args.device, checkpoint=checkpoint, **every)
    print(f"saved to {save_testbed(model, config, circuits, out, Path(out).name)}")
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return 0


def training_settings(assignments: list[str], config: Any) -> dict[str, Any]:
    """``--set FIELD=VALUE`` as overrides of ``config``'s fields, each VALUE read as JSON and
    checked against the type of the field's current value before any training starts; ``model``
    takes an object of the shape's fields (the vocabulary size stays the recipe's)."""
    from saekit._config import reject_unknown_fields
    from saekit._io import parse_json
    from saekit.errors import SaekitError

    def typed(name: str, value: Any, current: Any) -> Any:
        if isinstance(current, float) and type(value) in (int, float):
            return float(value)
        if isinstance(current, tuple) and isinstance(value, list):
            return value  # a JSON array; the config checks its items
        if type(value) is not type(current):
            kind = {bool: "true or false", int: "an integer", dict: "a JSON object", tuple: "a JSON array"}.get(type(current), type(current).__name__)
            raise SaekitError(f"--set {name} takes {kind} (the recipe's is {current!r}), got {value!r}.")
        return value

    settings = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        if not equals:
            raise SaekitError(f"--set {assignment!r} has no '=': write FIELD=VALUE, e.g. --set strict_toward_clean=true.")
        reject_unknown_fields(type(config), {name: None}, SaekitError)
        value = parse_json(text, SaekitError, f"--set {name}'s value {text!r}",
                           'Write it as JSON: true, 0.02, \'{"greater-than": 0.02}\'.')
        if name == "model":
            reject_unknown_fields(type(config.model), value, SaekitError)
            if "d_vocab" in value:
                raise SaekitError("--set model cannot change d_vocab: the vocabulary is the recipe's.")
            value = replace(config.model, **{key: typed(f"model.{key}", v, getattr(config.model, key)) for key, v in value.items()})
        settings[name] = typed(name, value, getattr(config, name))
    return settings


def run_ground_truth(args: argparse.Namespace) -> int:
    from saekit.zoo.ground_truth import write_ground_truth

    print(f"wrote {write_ground_truth(args.model, args.out)}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from saekit._io import check_folder_target
    from saekit.models import load_model
    from saekit.zoo import export_model

    out = check_folder_target(args.out)
    print(f"wrote {export_model(load_model(args.model), out, args.description)}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from saekit.zoo.card import ABLATION_REACH, OUTSIDE_BAR, reaches
    from saekit.zoo.evaluate import EVAL_PAIRS, check_toy_model

    report = check_toy_model(args.model, EVAL_PAIRS if args.pairs is None else args.pairs)
    if args.json:
        print_json(report)
        return 0
    print(f"{report['model']}: {report['n_heads']} heads")
    print(f"{'task':<14} {'pos acc':>8} {'pos metric':>11} {'neg metric':>11} {'chance':>8}  circuit")
    for name, row in report["tasks"].items():
        heads = " ".join(f"{layer}.{head}" for layer, head in row["gt_heads"])
        print(
            f"{name:<14} {row['pos_accuracy']:>8.3f} {row['pos_metric']:>11.3f} "
            f"{row['neg_metric']:>11.3f} {row['chance_metric']:>8.3f}  {heads}"
        )
    cards = {name: row["card"] for name, row in report["tasks"].items() if "card" in row}
    if cards:
        print(f"\n{'card':<14} {'faith mean':>10} {'resample':>9} {'ablated':>8} {'min in':>7} "
              f"{'max out ± se':>13} {'floor':>6} {'IIA':>6}  roles")
    for name, card in cards.items():
        roles = " ".join(f"{layer}.{head} {role}" for (layer, head), role in zip(card["heads"], card["roles"]))
        print(
            f"{name:<14} {card['faithfulness']['mean']:>10.2f} {card['faithfulness']['resample']:>9.2f} "
            f"{card['faithfulness_circuit_ablated']['mean']:>8.2f} {min(card['circuit_head_effects']):>7.2f} "
            f"{card['max_effect_outside']:>6.3f} ± {card['max_effect_outside_se']:.3f} {card['outside_noise_floor']:>6.3f} "
            f"{card['interchange_accuracy']:>6.2f}  {roles}"
        )
    if cards:
        names = [*next(iter(cards.values()))["premise_auc"], "patching", "acdc"]
        print(f"\n{'ROC AUC vs circuit':<18}" + "".join(f"{name:>16}" for name in names))
    for name, card in cards.items():
        aucs = [*card["premise_auc"].values(), *card["causal_auc"].values()]
        print(f"{name:<18}" + "".join(f"{'—':>16}" if auc is None else f"{auc:>16.2f}" for auc in aucs))
    if cards:
        print("\nbars missed (those a shipped test-bed must meet: docs/testbed.md)")
    for name, card in cards.items():
        missed = [bar for bar, met in card["bars"].items() if met is False]
        print(f"{name:<14} {', '.join(missed) or 'none'}")
    for name, card in cards.items():
        if card["outside_noise_floor"] > OUTSIDE_BAR:
            print(f"{name}: the outside bar is not resolved at {report['n_pairs']} pairs (noise floor "
                  f"{card['outside_noise_floor']:.3f} > {OUTSIDE_BAR}): run with more --pairs")
        short = {kind: share for kind, share in card["ablated_all_share"].items() if not reaches(share)}
        if short:
            removed = ", ".join(f"{share:.2f} ({kind})" if share is not None else f"nothing, there is no gap ({kind})"
                                for kind, share in short.items())
            bars = [f"faithful_{kind}" for kind in short]
            print(f"{name}: ablating every head removes {removed} of the gap between positives and negatives "
                  f"(at least {ABLATION_REACH} needed): faithfulness there is a ratio to little of the task, "
                  f"so {', '.join(bars)} and circuit_ablated are missed")
    return 0
