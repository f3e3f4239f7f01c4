"""Simulated slate steps per second through the Python package: VecShopEnv with precomputed
random slates (the environment alone), and metarec's random and LinTS policies choosing the
slates in batches (decide_batch, step, observe_batch); then, in the same run, RecoGym's random
agent at 100 products (bench/recogym_steps.py, one product per step, one core) and the ratio.

    python python/bench/steps.py [--envs 4096] [--steps 50] [--recogym-python PYTHON]

Build the package in release mode for meaningful numbers (`pip install ./python`);
`scripts/peers-venv` makes .venv-peers with metarec and RecoGym, whose Python is the default
RecoGym baseline when RecoGym imports here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import metarec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--scenario", default="default")
    parser.add_argument(
        "--recogym-python",
        default=sys.executable if importlib.util.find_spec("recogym") else None,
        help="a Python with RecoGym installed (default: this one, when RecoGym imports)",
    )
    parser.add_argument("--recogym-steps", type=int, default=20_000)
    args = parser.parse_args()
    sim = metarec.Simulator(args.scenario)
    n, k = args.envs, sim.slate_size
    rng = np.random.default_rng(0)
    slates = [
        np.argsort(rng.random((n, sim.n_items)), axis=1)[:, :k].astype(np.int64)
        for _ in range(10)
    ]
    print(f"scenario {sim.name}: {sim.n_items} items, slates of {k}, {n} users at a time")
    print(f"{'what':<34} {'slate steps/s':>14}")
    env = metarec.VecShopEnv(n, simulator=sim, seed=1)
    env.reset()
    start = time.perf_counter()
    for i in range(args.steps):
        env.step(slates[i % 10])
    env_rate = n * args.steps / (time.perf_counter() - start)
    print(f"{'VecShopEnv, given slates':<34} {env_rate:>14,.0f}")
    for name in ("random", "lints"):
        vec = metarec.VecEnv(sim, n, seed=1)
        vec.reset()
        policy = metarec.Policy(name, sim, seed=1)
        steps = max(1, args.steps // (1 if name == "random" else 5))
        start = time.perf_counter()
        for _ in range(steps):
            s, _ = policy.decide_batch(vec)
            _, _, _, clicks, purchases, revenue, _ = vec.step(s)
            policy.observe_batch(clicks, purchases, revenue)
        rate = n * steps / (time.perf_counter() - start)
        print(f"{'policy ' + name + ' (decide, step, learn)':<34} {rate:>14,.0f}")
    if args.recogym_python is None:
        print("RecoGym baseline not run: no RecoGym here (scripts/peers-venv, or --recogym-python)")
        return
    script = Path(__file__).resolve().parents[2] / "bench" / "recogym_steps.py"
    done = subprocess.run(
        [args.recogym_python, str(script), "100", str(args.recogym_steps)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"the RecoGym baseline failed:\n{done.stderr}")
    theirs = float(done.stdout.split()[-1])
    print(f"{'RecoGym random agent, 100 products':<34} {theirs:>14,.0f}  (single-item steps/s, one core)")
    # The cores this process may use (taskset narrows them), which VecShopEnv's threads follow.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"VecShopEnv / RecoGym: {env_rate / theirs:,.0f}x "
        f"({cores} cores for VecShopEnv; a slate step shows {k} items, RecoGym's shows one)"
    )


if __name__ == "__main__":
    main()
