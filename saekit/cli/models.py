"""``saekit models``: what can be loaded here, and whether it loads offline."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from saekit.cli import print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list the models saekit can load and whether each works offline"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--download", metavar="NAME", help="fetch a pretrained model into the local cache (needs internet)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from saekit.models import list_models, load_model

    if args.download:
        load_model(args.download, download=True)
        print(f"{args.download} is cached and loads offline from now on.")
        return 0
    infos = list_models()
    if args.json:
        print_json({"models": [asdict(info) for info in infos]})
        return 0
    print(f"{'model':<14} {'source':<11} {'offline':<8} description")
    for info in infos:
        offline = "yes" if info.offline else "no"
        also = f" (also {', '.join(info.aliases)})" if info.aliases else ""
        print(f"{info.name:<14} {info.source:<11} {offline:<8} {info.description}{also}")
    print("\nAlso: any TransformerLens model name, or a folder holding a Hugging Face model.")
    return 0
