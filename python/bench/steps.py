"""Simulated slate steps per second through the Python package: VecShopEnv with precomputed
random slates (the environment alone), and metarec's random and LinTS policies choosing the
slates in batches (decide_batch, step, observe_batch).

    python python/bench/steps.py [--envs 4096] [--steps 50]

Build the package in release mode for meaningful numbers (`pip install ./python`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import metarec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--scenario", default="default")
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
    rate = n * args.steps / (time.perf_counter() - start)
    print(f"{'VecShopEnv, given slates':<34} {rate:>14,.0f}")
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


if __name__ == "__main__":
    main()
