"""RecoGym's agents (Rohde et al. 2018, https://github.com/criteo-research/reco-gym) behind the
interface metarec.play expects.

RecoGym's agents recommend one product per step to a user whose organic page views they watch.
In metarec's shop a user's clicks are the product pages they viewed, so each clicked item is
given to the agent as an organic page view, and the shop's front page, where every visit starts,
is one more product (id `n_items`) that every user has viewed when their first slate is chosen
and that is never shown. The agent's action fills the slate's first position with the
probability it reports; the other positions are drawn, one after another without replacement,
from the rest of the agent's distribution over products, and uniformly from the items left once
that distribution is used up (a greedy agent's is after one). The agent learns from the first
position's click, RecoGym's reward, as VW does in `peer_vw.py`.
"""

from __future__ import annotations

import numpy as np
from recogym import Configuration, DefaultContext, Observation
from recogym.agents import (
    BanditCount,
    EpsilonGreedy,
    OrganicUserEventCounterAgent,
    RandomAgent,
    bandit_count_args,
    epsilon_greedy_args,
    organic_user_count_args,
    random_args,
)


def _config(defaults: dict, products: int, seed: int, **changes) -> Configuration:
    return Configuration(
        {**defaults, "num_products": products, "random_seed": seed, "with_ps_all": True, **changes}
    )


def random_agent(products: int, seed: int):
    """RecoGym's random agent."""
    return RandomAgent(_config(random_args, products, seed))


def bandit_count(products: int, seed: int):
    """The product with the best smoothed click rate after the last product viewed (greedy)."""
    return BanditCount(_config(bandit_count_args, products, seed))


def bandit_count_epsilon(products: int, seed: int):
    """Bandit count with RecoGym's epsilon-greedy wrapper (epsilon 0.1)."""
    config = _config(epsilon_greedy_args, products, seed, epsilon=0.1)
    return EpsilonGreedy(config, bandit_count(products, seed))


def organic_user_count(products: int, seed: int):
    """Products drawn in proportion to how often this user viewed them; the 0.01 added to
    every count lets it choose before the user has viewed any product but the front page."""
    config = _config(
        organic_user_count_args, products, seed, exploit_explore=False, epsilon=0.01
    )
    return OrganicUserEventCounterAgent(config)


AGENTS = {
    "recogym random": random_agent,
    "recogym bandit count": bandit_count,
    "recogym bandit count, epsilon 0.1": bandit_count_epsilon,
    "recogym organic user count": organic_user_count,
}


class RecoGymPolicy:
    """One RecoGym agent playing metarec's simulated users (see the module's description)."""

    def __init__(self, n_items: int, slate_size: int, make_agent, seed: int) -> None:
        self.n = n_items
        self.k = slate_size
        # The extra product is the front page.
        self.agent = make_agent(n_items + 1, seed)
        self.rng = np.random.default_rng(seed)
        self.user = -1
        self.time = 0
        self.views: list[int] = []
        self.click = 0
        self.pending = None

    def start_user(self, context) -> None:
        self.agent.reset()
        self.user += 1
        self.time = 0
        self.views = [self.n]
        self.click = 0

    def decide(self, context) -> tuple[list[int], list[float]]:
        # Only the views since the last step go in: RecoGym's observations are incremental and
        # its feature providers add them up.
        sessions = [{"t": self.time, "u": self.user, "z": "pageview", "v": v} for v in self.views]
        self.views = []
        observation = Observation(DefaultContext(self.time, self.user), sessions)
        action = self.agent.act(observation, self.click, False)
        pmf = np.asarray(action["ps-a"], dtype=float)[: self.n].copy()
        pmf[~np.isfinite(pmf)] = 0.0
        first = int(action["a"])
        if first >= self.n:
            # The agent chose the front page: its first position comes from the rest.
            first = self._draw(pmf, set())
        slate = [first]
        while len(slate) < self.k:
            slate.append(self._draw(pmf, set(slate)))
        mass = pmf.sum()
        p_first = float(pmf[first] / mass) if mass > 0 else 1.0 / self.n
        action = {**action, "a": first, "ps": p_first}
        self.pending = (observation, action)
        # The first position's probability is the agent's; later ones are not what it learns from.
        return slate, [p_first] + [1.0] * (self.k - 1)

    def _draw(self, pmf: np.ndarray, taken: set[int]) -> int:
        left = pmf.copy()
        left[list(taken)] = 0.0
        total = left.sum()
        if total > 0:
            return int(self.rng.choice(self.n, p=left / total))
        free = [i for i in range(self.n) if i not in taken]
        return int(free[self.rng.integers(len(free))])

    def observe(self, context, slate, propensities, clicks, purchases, revenue) -> None:
        observation, action = self.pending
        self.click = int(bool(clicks[0]))
        self.agent.train(observation, action, self.click, False)
        self.views.extend(item for item, clicked in zip(slate, clicks) if clicked)
        self.time += 1
