"""The simulated shop as gymnasium environments.

Each episode is one simulated user, from their first slate until they leave the shop (after one
or more visits). The action is a slate: one item id per position. A repeated item is shown once,
at its first position; its later entries get no feedback. The observation is what a policy may
know: the user's group, their session so far and their latest (item, click, purchase) events,
and the items' observable features. The step's ``info`` carries the raw feedback per position
(``clicks``, ``purchases``, ``revenue``), the user number and the next :class:`metarec.Context`
(for metarec's own policies); the reward is the scenario's objective of that feedback.

User ``n`` under a seed is the same person with the same luck whatever the policy or the batch
size (common random numbers), so policies can be compared on the same users.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarec._metarec import Simulator, VecEnv

_INT_MAX = np.iinfo(np.int64).max


def _user_spaces(sim: Simulator) -> dict[str, spaces.Space]:
    n, h = sim.n_items, sim.history_length
    return {
        # Unused history slots hold n_items.
        "history_items": spaces.MultiDiscrete(np.full(h, n + 1, dtype=np.int64)),
        "history_clicks": spaces.MultiBinary(h),
        "history_purchases": spaces.MultiBinary(h),
        "history_length": spaces.Discrete(h + 1),
        # Earlier visits and slates already shown in this visit.
        "session": spaces.Box(0, _INT_MAX, shape=(2,), dtype=np.int64),
        # The index of the user's group in ``Simulator.groups``; len(groups) when unknown.
        "group": spaces.Discrete(len(sim.groups) + 1),
    }


def _slot(obs: dict[str, np.ndarray], i: int, groups: int) -> dict[str, Any]:
    group = int(obs["group"][i])
    return {
        "history_items": obs["history_items"][i],
        "history_clicks": obs["history_clicks"][i],
        "history_purchases": obs["history_purchases"][i],
        "history_length": np.int64(obs["history_length"][i]),
        "session": np.array([obs["session"][i], obs["step"][i]], dtype=np.int64),
        "group": np.int64(group if group >= 0 else groups),
    }


def _slates(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The action as an int64 array of `shape`, or a ValueError: item ids are whole numbers, and
    a float or a string is refused rather than truncated."""
    a = np.asarray(action)
    if a.shape != shape:
        raise ValueError(f"the action has shape {a.shape}; expected {shape} (item ids)")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"the action holds {a.dtype} values; expected item ids (integers)")
    return np.ascontiguousarray(a, dtype=np.int64)


class ShopEnv(gym.Env):
    """One simulated user per episode.

    ``scenario`` is a preset (``"default"``), a scenario TOML file or a shop directory; pass a
    :class:`Simulator` to share one fitted world between environments (fitting takes seconds).
    ``seed`` chooses the users (default: the scenario's seed); ``reset(seed=s)`` restarts at
    user 0 of seed ``s``, ``reset(options={"user": n})`` plays user ``n``. ``max_steps``
    truncates an episode.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: str = "default",
        *,
        simulator: Simulator | None = None,
        seed: int | None = None,
        shop: str | None = None,
        data_dir: str | None = None,
        max_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.simulator = simulator or Simulator(scenario, shop=shop, data_dir=data_dir)
        sim = self.simulator
        self._env = VecEnv(sim, 1, seed=seed, autoreset=False)
        self._groups = len(sim.groups)
        self.item_features = sim.item_features()
        self.item_features.setflags(write=False)
        self.action_space = spaces.MultiDiscrete(
            np.full(sim.slate_size, sim.n_items, dtype=np.int64)
        )
        self.observation_space = spaces.Dict(
            {
                **_user_spaces(sim),
                # Constant within a scenario; the bounds are each column's range.
                "item_features": spaces.Box(
                    np.broadcast_to(self.item_features.min(axis=0), self.item_features.shape),
                    np.broadcast_to(self.item_features.max(axis=0), self.item_features.shape),
                    dtype=np.float32,
                ),
            }
        )
        self.max_steps = max_steps
        self._steps = 0
        self._started = False

    def _observe(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        out = _slot(obs, 0, self._groups)
        # A fresh copy each time: callers may keep and modify what they are given.
        out["item_features"] = self.item_features.copy()
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        user = (options or {}).get("user")
        obs = self._env.reset(None if user is None else [int(user)], seed=seed)
        self._steps = 0
        self._started = True
        return self._observe(obs), {"user": int(obs["user"][0]), "context": self._env.context(0)}

    def step(
        self, action: Any
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        slate = _slates(action, (self.simulator.slate_size,)).reshape(1, -1)
        obs, reward, done, clicks, purchases, revenue, users = self._env.step(slate)
        self._steps += 1
        terminated = bool(done[0])
        truncated = not terminated and self.max_steps is not None and self._steps >= self.max_steps
        if terminated:
            self._started = False
        info = {
            "clicks": clicks[0],
            "purchases": purchases[0],
            "revenue": revenue[0],
            "user": int(users[0]),
            "context": None if terminated else self._env.context(0),
        }
        # After the last slate the user is gone: the observation is then an empty history.
        return self._observe(obs), float(reward[0]), terminated, truncated, info


class VecShopEnv(VectorEnv):
    """``num_envs`` simulated users stepped at once, with same-step autoreset: when a user
    leaves, the slot's observation is already the next user's first, and ``terminations``
    says the slate was their last. The item features are constant, so they are not in the
    observation: read ``item_features``. ``users`` in the step's ``info`` is the user number
    each slate was shown to."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int,
        scenario: str = "default",
        *,
        simulator: Simulator | None = None,
        seed: int | None = None,
        shop: str | None = None,
        data_dir: str | None = None,
    ) -> None:
        self.simulator = simulator or Simulator(scenario, shop=shop, data_dir=data_dir)
        sim = self.simulator
        self.num_envs = num_envs
        self.env = VecEnv(sim, num_envs, seed=seed, autoreset=True)
        self._groups = len(sim.groups)
        self.item_features = sim.item_features()
        self.single_action_space = spaces.MultiDiscrete(
            np.full(sim.slate_size, sim.n_items, dtype=np.int64)
        )
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Dict(_user_spaces(sim))
        self.observation_space = batch_space(self.single_observation_space, num_envs)

    def _observe(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        group = obs["group"].copy()
        group[group < 0] = self._groups
        return {
            "history_items": obs["history_items"],
            "history_clicks": obs["history_clicks"],
            "history_purchases": obs["history_purchases"],
            "history_length": obs["history_length"],
            "session": np.stack([obs["session"], obs["step"]], axis=1),
            "group": group,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        users = (options or {}).get("users")
        obs = self.env.reset(None if users is None else [int(u) for u in users], seed=seed)
        return self._observe(obs), {"users": obs["user"]}

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        slates = _slates(actions, (self.num_envs, self.simulator.slate_size))
        obs, reward, done, clicks, purchases, revenue, users = self.env.step(slates)
        info = {"clicks": clicks, "purchases": purchases, "revenue": revenue, "users": users}
        return self._observe(obs), reward, done, np.zeros_like(done), info


def play(env: ShopEnv, policy: Any, users: int, seed: int) -> np.ndarray:
    """Plays users ``0..users-1`` of ``seed``, each from their first slate until they leave, and
    returns each user's total reward. ``policy`` is a :class:`metarec.Policy` or anything with
    its three methods: ``start_user(context)``, ``decide(context) -> (slate, propensities)`` and
    ``observe(context, slate, propensities, clicks, purchases, revenue)``. Every policy played
    with the same ``seed`` meets the same users with the same luck."""
    totals = np.zeros(users)
    for user in range(users):
        # Seeding once and then asking for user numbers keeps the users common to all policies.
        _, info = env.reset(seed=seed if user == 0 else None, options={"user": user})
        context = info["context"]
        policy.start_user(context)
        done = False
        while not done:
            slate, propensities = policy.decide(context)
            _, reward, terminated, truncated, info = env.step(np.asarray(slate, dtype=np.int64))
            policy.observe(
                context,
                list(slate),
                list(propensities),
                info["clicks"].tolist(),
                info["purchases"].tolist(),
                info["revenue"].tolist(),
            )
            totals[user] += reward
            done = terminated or truncated
            context = info["context"]
    return totals
