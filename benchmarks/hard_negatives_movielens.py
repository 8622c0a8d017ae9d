"""Hard negatives on MovieLens over several splits: mean, spread and paired gain of each run.

Runs `examples/movielens_hard_negatives.py` once per `--seeds` entry (the seed
sets both the 80/20 split and the initial weights), each in its own process, with
the flags after `--` passed through unchanged, and prints:

* per run: recall@10/50/100 overall, head and tail R@100, as mean and spread
  (max - min) over the seeds;
* per run: the paired difference against `--control` (same split, same initial
  weights) for R@100 / head / tail, mean and [min, max] over the seeds — the
  honest measure of what the run adds, since split-to-split spread is larger than
  most effects here;
* the DESIGN anchor (ID towers, full softmax, split 42: R@100 0.393, head 0.640,
  tail 0.149) and which runs clear it on average (R@100 >= 0.393 and tail > 0.149).

A control measured by an earlier run (same seeds and flags) can be reused with
`--control_from earlier.json` instead of training it again.

Usage:
  python benchmarks/hard_negatives_movielens.py --seeds 42,1,2 -- \\
      --movielens_dir ../shared/data/ml-100k --item_tower content \\
      --strategies full_softmax,mixed,mixed+hard_window
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence

import numpy as np

EXAMPLE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "examples", "movielens_hard_negatives.py"
)
ANCHOR = {"recall@100": 0.393, "head_recall@100": 0.640, "tail_recall@100": 0.149}
COLUMNS = ("recall@10", "recall@50", "recall@100", "head_recall@100", "tail_recall@100")
PAIRED = ("recall@100", "head_recall@100", "tail_recall@100")


def run_seed(seed: int, passthrough: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Runs the example for one seed in a fresh process; returns its results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        cmd = [sys.executable, EXAMPLE, *passthrough, "--seed", str(seed), "--output_json", out]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"seed {seed}: the example failed (exit {proc.returncode}):\n{tail}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)["results"]


def summarise(per_seed: Dict[int, Dict[str, Dict[str, float]]], control: str) -> List[str]:
    """The printed lines: mean ± spread per run, paired differences against `control`."""
    seeds = list(per_seed)
    runs = list(next(iter(per_seed.values())))
    width = max(len(r) for r in runs) + 2
    lines = [
        f"seeds {seeds}; mean (spread = max - min over seeds)",
        f"{'run':{width}s}" + "".join(f"{c:>20s}" for c in COLUMNS) + "  clears anchor",
    ]
    for run in runs:
        cells = []
        for col in COLUMNS:
            values = np.array([per_seed[s][run][col] for s in seeds], np.float64)
            cells.append(f"{values.mean():.4f} ({values.max() - values.min():.4f})")
        r100 = np.mean([per_seed[s][run]["recall@100"] for s in seeds])
        tail = np.mean([per_seed[s][run]["tail_recall@100"] for s in seeds])
        clears = r100 >= ANCHOR["recall@100"] and tail > ANCHOR["tail_recall@100"]
        lines.append(
            f"{run:{width}s}"
            + "".join(f"{c:>20s}" for c in cells)
            + f"  {'yes' if clears else 'no'}"
        )
    if control in runs:
        lines.append(f"paired difference against {control}: mean [min, max] over seeds")
        lines.append(f"{'run':{width}s}" + "".join(f"{c:>28s}" for c in PAIRED))
        for run in runs:
            if run == control:
                continue
            cells = []
            for col in PAIRED:
                diff = np.array([per_seed[s][run][col] - per_seed[s][control][col] for s in seeds])
                cells.append(f"{diff.mean():+.4f} [{diff.min():+.4f}, {diff.max():+.4f}]")
            lines.append(f"{run:{width}s}" + "".join(f"{c:>28s}" for c in cells))
    lines.append(
        "anchor (DESIGN, ID towers, full softmax, split 42): R@100 0.393, head 0.640, tail 0.149"
    )
    return lines


def main(argv: Sequence[str] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="42,1,2", help="split/initialisation seeds")
    parser.add_argument("--control", default="mixed", help="run the others are paired with")
    parser.add_argument("--output_json", default=None, help="write every seed's results here")
    parser.add_argument(
        "--control_from",
        default=None,
        help="--output_json of an earlier run holding --control for the same seeds and flags",
    )
    args = parser.parse_args(argv)
    if any(flag in passthrough for flag in ("--seed", "--output_json")):
        parser.error("pass --seeds and --output_json to this script, not to the example")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    print("example flags:", " ".join(passthrough), flush=True)
    per_seed = {}
    for seed in seeds:
        per_seed[seed] = run_seed(seed, passthrough)
        best = max(per_seed[seed].items(), key=lambda kv: kv[1]["recall@100"])
        print(f"seed {seed} done (best R@100 {best[0]} {best[1]['recall@100']:.4f})", flush=True)
    if args.control_from:  # the control measured earlier (same seeds, same split and start)
        with open(args.control_from, encoding="utf-8") as f:
            earlier = json.load(f)["results"]
        for seed, runs in per_seed.items():
            if args.control not in runs:
                if args.control not in earlier.get(str(seed), {}):
                    parser.error(f"--control_from has no {args.control!r} for seed {seed}")
                per_seed[seed] = {args.control: earlier[str(seed)][args.control], **runs}
    print("\n".join(summarise(per_seed, args.control)))
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump({"flags": passthrough, "results": per_seed}, f, indent=2)


if __name__ == "__main__":
    main()
