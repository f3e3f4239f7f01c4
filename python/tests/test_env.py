"""The simulated shop as gymnasium environments: the API contract (gymnasium's own checker),
reproducibility under common random numbers, and what a bad slate gets."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metarec


def random_slates(rng: np.random.Generator, n: int, sim: metarec.Simulator) -> np.ndarray:
    return np.argsort(rng.random((n, sim.n_items)), axis=1)[:, : sim.slate_size].astype(np.int64)


def test_shop_env_passes_gymnasiums_checker(sim):
    env = metarec.ShopEnv(simulator=sim, seed=3)
    check_env(env, skip_render_check=True)


def test_an_episode_is_one_user_and_rewards_follow_the_objective(sim):
    env = metarec.ShopEnv(simulator=sim, seed=11)
    weights = sim.reward()
    rng = np.random.default_rng(0)
    users_seen = set()
    total_clicks = 0
    for _ in range(30):
        obs, info = env.reset()
        assert obs["history_length"] == 0
        users_seen.add(info["user"])
        terminated = truncated = False
        steps = 0
        while not (terminated or truncated):
            slate = random_slates(rng, 1, sim)[0]
            obs, reward, terminated, truncated, info = env.step(slate)
            steps += 1
            clicks, purchases, revenue = info["clicks"], info["purchases"], info["revenue"]
            total_clicks += int(clicks.sum())
            want = (
                weights["click"] * clicks.sum()
                + weights["purchase"] * purchases.sum()
                + weights["revenue"] * revenue.sum()
            )
            assert reward == pytest.approx(want)
            assert not (purchases & ~clicks).any(), "a purchase without a click"
            assert steps < 10_000
        assert terminated and not truncated
    assert users_seen == set(range(30)), "reset() plays the next user number"
    assert total_clicks > 0


def test_the_same_seed_gives_the_same_users_and_the_same_luck(sim):
    def play(seed: int) -> list[tuple]:
        env = metarec.ShopEnv(simulator=sim)
        rng = np.random.default_rng(5)
        out = []
        obs, info = env.reset(seed=seed)
        for _ in range(40):
            obs, reward, terminated, truncated, info = env.step(random_slates(rng, 1, sim)[0])
            out.append((reward, info["clicks"].tolist(), info["user"]))
            if terminated:
                obs, info = env.reset()
        return out

    assert play(7) == play(7)
    assert play(7) != play(8)


def test_a_user_is_the_same_in_any_slot_and_any_batch_size(sim):
    rng = np.random.default_rng(1)
    slates = random_slates(rng, 8, sim)
    wide = metarec.VecEnv(sim, 8, seed=21, autoreset=False)
    wide.reset(list(range(100, 108)))
    _, wide_reward, _, wide_clicks, _, _, _ = wide.step(slates)
    for slot in (0, 5):
        narrow = metarec.VecEnv(sim, 1, seed=21, autoreset=False)
        narrow.reset([100 + slot])
        _, reward, _, clicks, _, _, users = narrow.step(slates[slot : slot + 1])
        assert users[0] == 100 + slot
        assert reward[0] == wide_reward[slot]
        assert (clicks[0] == wide_clicks[slot]).all()


def test_vector_env_autoresets_to_the_next_user_numbers(sim):
    n = 16
    env = metarec.VecShopEnv(n, simulator=sim, seed=2)
    obs, info = env.reset()
    assert list(info["users"]) == list(range(n))
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(3)
    started = n
    for _ in range(60):
        actions = random_slates(rng, n, sim)
        obs, reward, terminated, truncated, info = env.step(actions)
        assert reward.shape == (n,) and info["clicks"].shape == (n, sim.slate_size)
        assert not truncated.any()
        started += int(terminated.sum())
        assert env.observation_space.contains(obs)
    assert env.env.next_user == started, "each departure starts exactly the next user number"


def test_a_repeated_item_is_shown_once_and_bad_slates_are_value_errors(sim):
    env = metarec.VecEnv(sim, 2, seed=4)
    env.reset()
    # Item 0 five times: only the first entry can get feedback.
    same = np.zeros((2, sim.slate_size), dtype=np.int64)
    for _ in range(50):
        _, _, _, clicks, _, _, _ = env.step(same)
        assert not clicks[:, 1:].any()
    # A bad slate in slot 1 is refused before slot 0's user sees anything.
    fresh = metarec.VecEnv(sim, 2, seed=4)
    fresh.reset()
    good = random_slates(np.random.default_rng(8), 2, sim)
    bad = good.copy()
    bad[1, 2] = sim.n_items
    with pytest.raises(ValueError, match=r"slates\[1\]: position 2: item 500 is not an item id"):
        fresh.step(bad)
    twin = metarec.VecEnv(sim, 2, seed=4)
    twin.reset()
    assert fresh.step(good)[1].tolist() == twin.step(good)[1].tolist()
    assert fresh.steps == twin.steps == 2
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((3, sim.slate_size), dtype=np.int64))
    with pytest.raises(ValueError, match="users has 1 numbers for 2 slots"):
        env.reset([1])
    with pytest.raises(RuntimeError, match="reset"):
        metarec.ShopEnv(simulator=sim).step([0, 1, 2, 3, 4])


def test_a_slot_whose_user_left_must_be_reset_without_autoreset(sim):
    env = metarec.VecEnv(sim, 1, seed=9, autoreset=False)
    env.reset()
    rng = np.random.default_rng(2)
    for _ in range(10_000):
        _, _, done, _, _, _, _ = env.step(random_slates(rng, 1, sim))
        if done[0]:
            break
    assert done[0]
    with pytest.raises(ValueError, match="call reset first"):
        env.step(random_slates(rng, 1, sim))


def test_unknown_scenarios_are_value_errors(data_dir):
    with pytest.raises(ValueError, match="no-such-scenario"):
        metarec.Simulator("no-such-scenario", data_dir=str(data_dir))


def test_a_shop_directory_is_a_scenario(metarec_cli, tmp_path):
    files = tmp_path / "files"
    shop = tmp_path / "shop"
    metarec_cli("shop", "generate", "--out", str(files), "--items", "60", "--users", "400", "--slate", "3")
    metarec_cli(
        "shop", "import",
        "--catalog", str(files / "catalog.csv"),
        "--users", str(files / "users.csv"),
        "--events", str(files / "events.csv"),
        "--out", str(shop),
    )
    sim = metarec.Simulator(str(shop))
    assert sim.n_items <= 60 and sim.slate_size == 3
    assert "on" in sim.name
    env = metarec.ShopEnv(simulator=sim, seed=1)
    check_env(env, skip_render_check=True)
