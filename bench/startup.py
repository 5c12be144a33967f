"""What a bot process spends before it serves: CPU and peak memory, aiogram's models deferred.

Each run is a fresh ``python`` that imports what ``python -m bot`` imports to serve and builds
what the serving bot builds before it serves (``bot.telegram.prepare_models``), once with aiogram's
models built on first use (``bot/aiogram_types.py``, as the bot runs) and once with aiogram
imported first, so that its own import builds all of them. Printed: the CPU seconds of each
part, the peak RSS, and the ratios; ``--runs`` runs of each, alternating, medians.

    uv run python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import json, resource, sys, time
if sys.argv[1] == "eager":
    import aiogram  # first: aiogram's own import builds every model
import bot.__main__, bot.app, bot.telegram
imported = time.process_time()
bot.telegram.prepare_models()
ready = time.process_time()
print(json.dumps({"import": imported, "prepare": ready - imported, "total": ready,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def probe(how: str) -> dict[str, float]:
    """One fresh process's figures, aiogram's models built ``how`` ("deferred" or "eager")."""
    done = subprocess.run(  # noqa: S603 -- this interpreter, this script
        [sys.executable, "-c", PROBE, how],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> None:
    """Print the figures of ``--runs`` fresh processes of each kind."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    seen: dict[str, list[dict[str, float]]] = {"deferred": [], "eager": []}
    for _ in range(runs):
        for how, figures in seen.items():
            figures.append(probe(how))
    medians = {
        how: {key: statistics.median(run[key] for run in figures) for key in figures[0]}
        for how, figures in seen.items()
    }
    print(f"bot start-up before serving, medians of {runs} fresh processes each:")
    for how, m in medians.items():
        print(
            f"  {how:8} import {m['import']:.2f} CPU-s, prepare {m['prepare']:.2f} CPU-s,"
            f" total {m['total']:.2f} CPU-s, peak RSS {m['rss_mb']:.0f} MB"
        )
    deferred, eager = medians["deferred"], medians["eager"]
    print(
        f"  deferred/eager: CPU {deferred['total'] / eager['total']:.2f},"
        f" peak RSS {deferred['rss_mb'] / eager['rss_mb']:.2f}"
        f" ({eager['rss_mb'] - deferred['rss_mb']:.0f} MB less)"
    )


if __name__ == "__main__":
    main()
