"""Vowpal Wabbit's contextual bandits behind the interface metarec.play expects.

VW plays `cb_explore_adf` with one action-dependent example per item: the item's observable
features and id; the shared features are the user's group and the items they clicked in the
session. VW chooses one action from its distribution; a slate is filled by drawing positions one
after another from that distribution without replacement, and VW learns from the first position
(its action, its probability, cost = minus the reward of that entry), which is what a contextual
bandit's update is defined on. This is a fair use of VW for slates, not the only one; its slates
mode (CCB) is not tried here.
"""

from __future__ import annotations

import numpy as np
import vowpalwabbit

import metarec

AGENTS = {
    "vw cb_explore_adf epsilon 0.1": "--epsilon 0.1",
    "vw cb_explore_adf squarecb": "--squarecb",
}


class VwPolicy:
    """VW's cb_explore_adf with the given exploration flags."""

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

    def _shared(self, context: metarec.Context) -> str:
        clicked = " ".join(f"c{item}" for item, click, _ in context.history if click)
        tokens = " ".join(t.replace("=", "_").replace(" ", "_") for t in context.tokens)
        return f"shared |U {tokens} {clicked}"

    def start_user(self, context: metarec.Context) -> None:
        pass

    def decide(self, context: metarec.Context) -> tuple[list[int], list[float]]:
        pmf = np.asarray(self.vw.predict([self._shared(context), *self.items]), dtype=float)
        pmf = pmf / pmf.sum()
        slate: list[int] = []
        left = pmf.copy()
        for _ in range(self.k):
            p = left / left.sum()
            a = int(self.rng.choice(len(p), p=p))
            slate.append(a)
            left[a] = 0.0
        # The first position's probability is exact; later ones are not what VW learns from.
        return slate, [float(pmf[slate[0]])] + [1.0] * (self.k - 1)

    def observe(self, context, slate, propensities, clicks, purchases, revenue) -> None:
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
