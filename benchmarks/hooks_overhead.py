"""The native trainer's normal path with and without the refinement hooks compiled in.

Times one ``evozero.train`` call (PPO on breakout, ``--updates`` updates of 64 x 128
steps) in this checkout and in a checkout built from the commit before the hooks
(``--baseline``: its ``src`` directory with the compiled extension), alternating the
two in fresh processes, ``--rounds`` times each; prints the median seconds of each and
their ratio (this / baseline).

    git archive bec5854 | tar -x -C /tmp/old && (cd /tmp/old && python setup.py build_ext --inplace)
    python benchmarks/hooks_overhead.py --baseline /tmp/old/src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CODE = (
    "import time; from evozero.native.train import train, TrainConfig\n"
    "c = TrainConfig(total_steps=8192 * {updates})\n"
    "train('programs/ppo.evz', 'breakout', c, seed=0)\n"  # warm-up
    "t = time.perf_counter(); train('programs/ppo.evz', 'breakout', c, seed=1)\n"
    "print(time.perf_counter() - t)\n"
)


def timed(src: str, updates: int) -> float:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(updates=updates)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="src/ of the build without hooks")
    ap.add_argument("--updates", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    new, old = [], []
    for _ in range(args.rounds):
        new.append(timed(here, args.updates))
        old.append(timed(args.baseline, args.updates))
    a, b = statistics.median(new), statistics.median(old)
    print(f"with hooks {a:.3f} s, baseline {b:.3f} s (medians of {args.rounds}); ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
