"""Plays LinTS and a random policy through ShopEnv, one simulated user per episode, on the same
200 users, and prints each policy's reward per user with a 95% interval.

    python python/examples/play.py [--users 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import metarec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", default="default")
    args = parser.parse_args()
    start = time.time()
    simulator = metarec.Simulator(args.scenario)
    print(
        f"scenario {simulator.name}: {simulator.n_items} items, slates of "
        f"{simulator.slate_size}, fitted in {time.time() - start:.1f} s"
    )
    env = metarec.ShopEnv(simulator=simulator)
    print(f"{'policy':<8} {'reward per user':>16}  95% interval       users")
    for name in ("random", "lints"):
        policy = metarec.Policy(name, simulator, seed=args.seed)
        totals = metarec.play(env, policy, args.users, args.seed)
        half = 1.96 * totals.std(ddof=1) / math.sqrt(len(totals))
        print(
            f"{name:<8} {totals.mean():>16.3f}  [{totals.mean() - half:.3f}, "
            f"{totals.mean() + half:.3f}]  {len(totals)}"
        )


if __name__ == "__main__":
    main()
