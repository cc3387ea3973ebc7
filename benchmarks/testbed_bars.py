"""Which acceptance bars each task of each test-bed run meets, from its card file.

Reads the JSON that ``saekit zoo check --model DIR --json`` printed for each run and applies
`saekit.zoo.card.acceptance_bars` (so a card written before a measure existed still reads: that
bar shows as not measured). One row per run and task with the bars it misses, then per bar and
task how many of the runs meet it, of those that measure it.

::

    saekit zoo check --model RUN_DIR --json > RUN.json
    python benchmarks/testbed_bars.py RUN.json [RUN.json ...]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from saekit.zoo.card import acceptance_bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cards", nargs="+", type=Path, help="`saekit zoo check --json` output files")
    args = parser.parse_args()
    met: Counter[tuple[str, str]] = Counter()
    measured: Counter[tuple[str, str]] = Counter()
    print(f"{'run':<28} {'task':<13} bars missed (not measured)")
    for path in args.cards:
        try:
            cards = {name: row["card"] for name, row in json.loads(path.read_text())["tasks"].items() if "card" in row}
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(f"{path} is not what `saekit zoo check --json` prints ({error!r}).")
        for name, bars in acceptance_bars(cards).items():
            missed = [bar for bar, value in bars.items() if value is False]
            unmeasured = [bar for bar, value in bars.items() if value is None]
            met.update((name, bar) for bar, value in bars.items() if value)
            measured.update((name, bar) for bar, value in bars.items() if value is not None)
            met[name, "every bar measured"] += not missed
            measured[name, "every bar measured"] += 1
            note = f" ({', '.join(unmeasured)})" if unmeasured else ""
            print(f"{path.stem:<28} {name:<13} {', '.join(missed) or 'every bar'}{note}")
    tasks = list(dict.fromkeys(name for name, _ in measured))
    bars = list(dict.fromkeys(bar for _, bar in measured))
    print(f"\n{'runs meeting the bar':<22}" + "".join(f"{name:>14}" for name in tasks))
    for bar in bars:
        print(f"{bar:<22}" + "".join(f"{f'{met[name, bar]}/{measured[name, bar]}':>14}" for name in tasks))


if __name__ == "__main__":
    main()
