"""Other libraries' agents against metarec's policies on the same simulated users.

    scripts/peers-venv      # .venv-peers: metarec (release), RecoGym 0.1.3.0, Vowpal Wabbit 9.11.9
    .venv-peers/bin/python bench/peers/shop.py [--users 200] [--seeds 3] [--only metarec,vw,recogym]

Every policy plays users 0..users-1 of each seed through metarec.ShopEnv (the default scenario:
500 items, slates of 5, reward 1 per click and 5 per purchase), each user from their first slate
until they leave; the table gives the reward per user with a 95% interval over all users and
seeds, and decisions per second (the policy's decide and learn calls only, not the simulator).
How each peer is fitted to slates is in its module: `peer_vw.py` (Vowpal Wabbit's
cb_explore_adf) and `peer_recogym.py` (RecoGym's agents). A peer whose package is missing is
left out with a note.
"""

from __future__ import annotations

import argparse
import importlib
import math
import time

import numpy as np

import metarec


class Timed:
    """Any policy-like object with its decide and observe calls timed."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.decisions = 0
        self.seconds = 0.0

    def start_user(self, context) -> None:
        self.policy.start_user(context)

    def decide(self, context):
        start = time.perf_counter()
        out = self.policy.decide(context)
        self.decisions += 1
        self.seconds += time.perf_counter() - start
        return out

    def observe(self, *args) -> None:
        start = time.perf_counter()
        self.policy.observe(*args)
        self.seconds += time.perf_counter() - start


def _peer(module: str, library: str):
    """The adapter module of a peer library, or None (with a note) when the library is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        print(f"({library} left out: {e}; scripts/peers-venv installs it)")
        return None


def contestants(sim: metarec.Simulator, only: set[str]) -> dict:
    """Name -> a function of the seed making a fresh policy, for every family in `only` whose
    package imports."""
    out = {}
    if "metarec" in only:
        for name in ("random", "lints", "lints-user"):
            out[f"metarec {name}"] = lambda s, name=name: metarec.Policy(name, sim, seed=s)
    if "vw" in only and (vw := _peer("peer_vw", "Vowpal Wabbit")):
        for name, flags in vw.AGENTS.items():
            out[name] = lambda s, flags=flags: vw.VwPolicy(sim, flags, s)
    if "recogym" in only and (rg := _peer("peer_recogym", "RecoGym")):
        for name, make in rg.AGENTS.items():
            out[name] = lambda s, make=make: rg.RecoGymPolicy(sim.n_items, sim.slate_size, make, s)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default="metarec,vw,recogym")
    args = parser.parse_args()
    sim = metarec.Simulator("default")
    env = metarec.ShopEnv(simulator=sim)
    players = contestants(sim, set(args.only.split(",")))
    print(
        f"{args.users} users x {args.seeds} seeds of scenario {sim.name} "
        f"({sim.n_items} items, slates of {sim.slate_size})"
    )
    print("| policy | reward per user | 95% interval | decisions/s |")
    print("|---|---|---|---|")
    for name, make in players.items():
        totals, decisions, seconds = [], 0, 0.0
        for seed in range(1, args.seeds + 1):
            policy = Timed(make(seed))
            totals.append(metarec.play(env, policy, args.users, seed))
            decisions += policy.decisions
            seconds += policy.seconds
        t = np.concatenate(totals)
        half = 1.96 * t.std(ddof=1) / math.sqrt(len(t))
        print(
            f"| {name} | {t.mean():.3f} | [{t.mean() - half:.3f}, {t.mean() + half:.3f}] "
            f"| {decisions / seconds:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
