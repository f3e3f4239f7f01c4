"""metarec from Python.

- :class:`ShopEnv` and :class:`VecShopEnv`: the simulated shop as gymnasium environments (one
  user at a time, or many stepped at once).
- :class:`Simulator`: a scenario fitted to its data (Online Retail, shipped inside the module,
  or a shop directory made by ``metarec shop import``).
- :class:`Policy`: every metarec policy by name (see :func:`policy_names`): the baselines and
  trained model bundles (``neural:DIR``, ``neural-greedy:DIR``, ``neural-static:DIR``, ``adjusted:DIR``).
- :func:`play`: plays users through a :class:`ShopEnv` with any policy-like object.
- :class:`Trainer`: the neural policy's training on a simulator (REINFORCE, actor-critic,
  distillation from the informed yardstick, or posterior distillation from the values the
  simulator reveals); :func:`metarec.ray.train` splits its batches over a Ray cluster.
- :func:`arena`: the policy arena, the same numbers as ``metarec arena`` for the same seeds.
- :mod:`metarec.ope`: off-policy estimators on numpy arrays in Open Bandit Pipeline's shapes.
- :class:`Client`: the HTTP client of ``metarec serve`` (rank, feedback, reward).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from metarec._metarec import (
    Context,
    Policy,
    Simulator,
    Trainer,
    VecEnv,
    __version__,
    arena_json,
    policy_names,
)
from metarec import ope
from metarec.client import Client, ServerError
from metarec.env import ShopEnv, VecShopEnv, play

__all__ = [
    "Client",
    "Context",
    "Policy",
    "ServerError",
    "ShopEnv",
    "Simulator",
    "Trainer",
    "VecEnv",
    "VecShopEnv",
    "__version__",
    "arena",
    "ope",
    "play",
    "policy_names",
]


def arena(
    simulator: Simulator,
    policies: Sequence[str],
    *,
    users: int = 1000,
    seeds: int = 3,
    horizon: int = 20,
    threads: int = 0,
    against: Sequence[str] = ("popularity",),
) -> dict[str, Any]:
    """Plays ``policies`` on ``users`` new users for each of ``seeds`` seeds and returns the
    report ``metarec arena --json`` writes under ``results``: per contestant the reward per user
    with its 95% interval, the cold-start curve, and paired differences against ``against``."""
    return json.loads(
        arena_json(
            simulator,
            list(policies),
            users=users,
            seeds=seeds,
            horizon=horizon,
            threads=threads,
            against=list(against),
        )
    )
