"""metarec's policies from Python, and the arena: the same numbers as the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import metarec


def test_every_baseline_is_available_by_name(sim):
    names = metarec.policy_names()
    for name in ("random", "popularity", "egreedy", "linucb", "lints", "itemknn"):
        assert name in names
        policy = metarec.Policy(name, sim, seed=1)
        env = metarec.ShopEnv(simulator=sim, seed=1)
        _, info = env.reset()
        slate, propensities = policy.decide(info["context"])
        assert len(slate) == sim.slate_size == len(set(slate))
        assert all(0 <= i < sim.n_items for i in slate)
        assert all(0.0 < p <= 1.0 for p in propensities)


def test_unknown_names_and_bad_feedback_are_value_errors(sim):
    with pytest.raises(ValueError, match="unknown policy `nope`; expected one of"):
        metarec.Policy("nope", sim)
    with pytest.raises(ValueError, match="needs a model directory"):
        metarec.Policy("neural:", sim)
    policy = metarec.Policy("lints", sim, seed=1)
    ctx = metarec.Context("u1")
    slate, props = policy.decide(ctx)
    with pytest.raises(ValueError):
        policy.observe(ctx, slate, props, [True], [False], [0.0])
    with pytest.raises(ValueError, match="not an item id"):
        policy.observe(ctx, [sim.n_items], [1.0], [True], [False], [0.0])
    with pytest.raises(ValueError, match="not a finite number"):
        metarec.Context("u1", features=[float("nan")])


def test_a_context_says_how_many_events_its_visit_showed():
    ctx = metarec.Context("u1", history=[(3, True, False), (4, False, False)], visit_events=1)
    assert ctx.visit_events == 1
    assert '"visit_events":1' in ctx.to_json()
    # Not said: absent from the JSON, as in contexts written before the field existed.
    assert metarec.Context("u1").visit_events is None
    assert "visit_events" not in metarec.Context("u1").to_json()
    with pytest.raises(OverflowError):
        metarec.Context("u1", visit_events=-1)


def test_decisions_are_reproducible_from_the_seed(sim):
    ctx = metarec.Context("u1", tokens=["country=France"], history=[(3, True, False)])

    def decide(seed: int) -> list:
        policy = metarec.Policy("lints", sim, seed=seed)
        return [policy.decide(ctx) for _ in range(5)]

    assert decide(4) == decide(4)
    assert decide(4) != decide(5)


def test_lints_learns_and_beats_random_on_the_same_users(sim):
    report = metarec.arena(sim, ["random", "lints"], users=300, seeds=1, against=["random"])
    by_name = {c["policy"]: c for c in report["contestants"]}
    paired = [p for p in report["paired"] if p["policy"] == "lints" and p["against"] == "random"]
    assert by_name["lints"]["reward"]["mean"] > by_name["random"]["reward"]["mean"]
    assert paired and paired[0]["reward_difference"]["low"] > 0, paired


def test_the_arena_gives_the_command_lines_numbers(sim, metarec_cli, tmp_path):
    args = dict(users=40, seeds=2, horizon=10, against=["random"])
    ours = metarec.arena(sim, ["random", "egreedy"], **args)
    out = tmp_path / "arena.json"
    metarec_cli(
        "arena",
        "--policies", "random,egreedy",
        "--users", "40",
        "--seeds", "2",
        "--horizon", "10",
        "--against", "random",
        "--json", str(out),
        "--logdir", str(tmp_path / "runs"),
    )
    theirs = json.loads(out.read_text())
    assert theirs.pop("results_kind") == "arena"
    for report in (ours, theirs):
        for c in report["contestants"]:
            c.pop("seconds")
    assert ours == theirs


def test_play_gives_every_policy_the_same_users(sim):
    env = metarec.ShopEnv(simulator=sim)
    a = metarec.play(env, metarec.Policy("random", sim, seed=2), 20, seed=3)
    b = metarec.play(env, metarec.Policy("random", sim, seed=2), 20, seed=3)
    c = metarec.play(env, metarec.Policy("random", sim, seed=2), 20, seed=4)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert len(a) == 20 and a.sum() > 0
