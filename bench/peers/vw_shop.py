"""Vowpal Wabbit's contextual bandits against metarec's policies on the same simulated users.

    pip install ./python vowpalwabbit==9.11.9
    python bench/peers/vw_shop.py [--users 200] [--seeds 3]

Every policy plays users 0..users-1 of each seed through metarec.ShopEnv (the default scenario:
500 items, slates of 5, reward 1 per click and 5 per purchase), each user from their first slate
until they leave; the table gives the reward per user with a 95% interval over all users and
seeds, and decisions per second (the policy's decide and learn calls only, not the simulator).

VW plays `cb_explore_adf` with epsilon-greedy (epsilon 0.1) and SquareCB, one action-dependent
example per item: the item's observable features and id; the shared features are the user's
group and the items they clicked in the session. VW chooses one action from its distribution;
a slate is filled by drawing positions one after another from that distribution without
replacement, and VW learns from the first position (its action, its probability, cost = minus
the reward of that entry), which is what a contextual bandit's update is defined on. This is a
fair use of VW for slates, not the only one; its slates mode (CCB) is not tried here.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import vowpalwabbit

import metarec


class VwPolicy:
    """VW's cb_explore_adf behind the interface metarec.play expects."""

    def __init__(self, sim: metarec.Simulator, explore: str, seed: int) -> None:
        self.vw = vowpalwabbit.Workspace(
            f"--cb_explore_adf {explore} -q UA --quiet --random_seed {seed}"
        )
        self.rng = np.random.default_rng(seed)
        self.k = sim.slate_size
        self.weights = sim.reward()
        features = sim.item_features()
        names = sim.feature_names
        self.items = [
            f"|A id{i} " + " ".join(f"{n}:{v:.5g}" for n, v in zip(names, row))
            for i, row in enumerate(features)
        ]
        self.decisions = 0
        self.seconds = 0.0

    def _shared(self, context: metarec.Context) -> str:
        clicked = " ".join(f"c{item}" for item, click, _ in context.history if click)
        return "shared |U " + " ".join(t.replace("=", "_").replace(" ", "_") for t in context.tokens) + " " + clicked

    def start_user(self, context: metarec.Context) -> None:
        pass

    def decide(self, context: metarec.Context) -> tuple[list[int], list[float]]:
        start = time.perf_counter()
        pmf = np.asarray(self.vw.predict([self._shared(context), *self.items]), dtype=float)
        pmf = pmf / pmf.sum()
        slate: list[int] = []
        left = pmf.copy()
        for _ in range(self.k):
            p = left / left.sum()
            a = int(self.rng.choice(len(p), p=p))
            slate.append(a)
            left[a] = 0.0
        self.decisions += 1
        self.seconds += time.perf_counter() - start
        # The first position's probability is exact; later ones are not what VW learns from.
        return slate, [float(pmf[slate[0]])] + [1.0] * (self.k - 1)

    def observe(self, context, slate, propensities, clicks, purchases, revenue) -> None:
        start = time.perf_counter()
        a = slate[0]
        reward = (
            self.weights["click"] * clicks[0]
            + self.weights["purchase"] * purchases[0]
            + self.weights["revenue"] * revenue[0]
        )
        lines = [self._shared(context)] + [
            (f"0:{-reward}:{propensities[0]} " if i == a else "") + line
            for i, line in enumerate(self.items)
        ]
        self.vw.learn(lines)
        self.seconds += time.perf_counter() - start


class Timed:
    """A metarec policy with its decide and observe calls timed."""

    def __init__(self, policy: metarec.Policy) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    sim = metarec.Simulator("default")
    env = metarec.ShopEnv(simulator=sim)
    contestants = {
        "metarec random": lambda s: Timed(metarec.Policy("random", sim, seed=s)),
        "metarec lints": lambda s: Timed(metarec.Policy("lints", sim, seed=s)),
        "metarec lints-user": lambda s: Timed(metarec.Policy("lints-user", sim, seed=s)),
        "vw cb_explore_adf epsilon 0.1": lambda s: VwPolicy(sim, "--epsilon 0.1", s),
        "vw cb_explore_adf squarecb": lambda s: VwPolicy(sim, "--squarecb", s),
    }
    print(
        f"{args.users} users x {args.seeds} seeds of scenario {sim.name} "
        f"({sim.n_items} items, slates of {sim.slate_size})"
    )
    print(f"| policy | reward per user | 95% interval | decisions/s |")
    print(f"|---|---|---|---|")
    for name, make in contestants.items():
        totals, decisions, seconds = [], 0, 0.0
        for seed in range(1, args.seeds + 1):
            policy = make(seed)
            totals.append(metarec.play(env, policy, args.users, seed))
            decisions += policy.decisions
            seconds += policy.seconds
        t = np.concatenate(totals)
        half = 1.96 * t.std(ddof=1) / math.sqrt(len(t))
        print(
            f"| {name} | {t.mean():.3f} | [{t.mean() - half:.3f}, {t.mean() + half:.3f}] "
            f"| {decisions / seconds:,.0f} |"
        )


if __name__ == "__main__":
    main()
