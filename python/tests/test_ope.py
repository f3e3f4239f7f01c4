"""Off-policy estimators on numpy arrays: the formulas, obp's numbers on the Open Bandit sample,
the command line's `--action-dist`, and what bad arrays get."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import metarec
import obd_arrays as arrays
from metarec import ope

HERE = pathlib.Path(__file__).resolve().parent


def small_log(seed: int = 0, n: int = 500, actions: int = 6, positions: int = 2):
    rng = np.random.default_rng(seed)
    action = rng.integers(0, actions, n)
    position = rng.integers(0, positions, n)
    pscore = np.full(n, 1.0 / actions)
    reward = (rng.random(n) < 0.1 + 0.05 * action).astype(float)
    logits = rng.normal(size=(n, actions, positions))
    dist = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    q = rng.random((n, actions, positions)) * 0.3
    return reward, action, position, pscore, dist, q


def test_the_estimates_are_the_textbook_formulas():
    reward, action, position, pscore, dist, q = small_log()
    n = len(reward)
    got = ope.estimate_policy_values(
        reward=reward,
        action=action,
        position=position,
        pscore=pscore,
        action_dist=dist,
        estimated_rewards_by_reg_model=q,
        estimators=["dm", "ipw", "snipw", "dr", "sndr"],
    )
    rows = np.arange(n)
    w = dist[rows, action, position] / pscore
    q_logged = q[rows, action, position]
    dm = (dist[rows, :, position] * q[rows, :, position]).sum(axis=1)
    want = {
        "dm": dm.mean(),
        "ipw": (w * reward).mean(),
        "snipw": (w * reward).sum() / w.sum(),
        "dr": (dm + w * (reward - q_logged)).mean(),
        "sndr": dm.mean() + (w * (reward - q_logged)).sum() / w.sum(),
    }
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_intervals_cover_the_value_and_follow_the_seed():
    reward, action, position, pscore, dist, q = small_log(1)
    args = dict(reward=reward, action=action, position=position, pscore=pscore, action_dist=dist)
    a = ope.estimate_intervals(**args, resamples=200, seed=3)
    b = ope.estimate_intervals(**args, resamples=200, seed=3)
    c = ope.estimate_intervals(**args, resamples=200, seed=4)
    assert a == b and a != c
    for e in a.values():
        assert e["low"] <= e["value"] <= e["high"] and e["std_error"] > 0


def test_bad_arrays_are_value_errors_that_say_what():
    reward, action, position, pscore, dist, q = small_log(2)
    args = dict(reward=reward, action=action, position=position, pscore=pscore)
    with pytest.raises(ValueError, match="sum to .*more than one"):
        ope.estimate_policy_values(**args, action_dist=dist * 2)
    with pytest.raises(ValueError, match="needs estimated_rewards_by_reg_model"):
        ope.estimate_policy_values(**args, action_dist=dist, estimators=["dr"])
    with pytest.raises(ValueError, match="unknown estimator `dml`"):
        ope.estimate_policy_values(**args, action_dist=dist, estimators=["dml"])
    with pytest.raises(ValueError, match="does not fit the log: it has 500 rounds"):
        ope.estimate_policy_values(**args, action_dist=dist[:-1])
    with pytest.raises(ValueError, match="action has 499 rounds, reward has 500"):
        ope.estimate_policy_values(**{**args, "action": action[:-1]}, action_dist=dist)
    bad = pscore.copy()
    bad[7] = 0.0
    with pytest.raises(ValueError, match="row 8: entry 0: logging propensity 0 is outside"):
        ope.estimate_policy_values(**{**args, "pscore": bad}, action_dist=dist)
    nan = dist.copy()
    nan[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"\[3, 2, 1\] is NaN"):
        ope.estimate_policy_values(**args, action_dist=nan)


def obd_arrays(data_dir: pathlib.Path):
    logged = arrays.load_obd(data_dir / "obd" / "random" / "all" / "all.csv")
    n = len(logged["reward"])
    dist = arrays.action_dist(n, logged["n_actions"], logged["len_list"])
    q = arrays.estimated_rewards(
        logged["reward"],
        logged["action"],
        logged["position"],
        logged["n_actions"],
        logged["len_list"],
        n,
    )
    return logged, dist, q


def test_ipw_snipw_and_dr_equal_obps_on_the_open_bandit_sample(data_dir):
    logged, dist, q = obd_arrays(data_dir)
    reference = json.loads((HERE / "data" / "obp_reference.json").read_text())
    got = ope.estimate_policy_values(
        reward=logged["reward"],
        action=logged["action"],
        position=logged["position"],
        pscore=logged["pscore"],
        action_dist=dist,
        estimated_rewards_by_reg_model=q,
        estimators=["ipw", "snipw", "dr"],
    )
    for name in ("ipw", "snipw", "dr"):
        assert abs(got[name] - reference["estimates"][name]) <= 1e-9, (name, got, reference)
    try:
        from obp.ope import (
            DoublyRobust,
            InverseProbabilityWeighting,
            OffPolicyEvaluation,
            SelfNormalizedInverseProbabilityWeighting,
        )
    except ImportError:
        return  # obp is not installed: the stored reference above is what obp gave.
    live = OffPolicyEvaluation(
        bandit_feedback=arrays.obp_feedback(logged),
        ope_estimators=[
            InverseProbabilityWeighting(),
            SelfNormalizedInverseProbabilityWeighting(),
            DoublyRobust(),
        ],
    ).estimate_policy_values(action_dist=dist, estimated_rewards_by_reg_model=q)
    for name in ("ipw", "snipw", "dr"):
        assert abs(got[name] - live[name]) <= 1e-9


def test_the_command_line_reads_the_same_action_distribution(data_dir, metarec_cli, tmp_path):
    logged, dist, _ = obd_arrays(data_dir)
    path = tmp_path / "dist.npy"
    np.save(path, dist)
    out = json.loads(
        metarec_cli("ope", "--action-dist", str(path), "--resamples", "10", "--json")
    )
    ours = ope.estimate_policy_values(
        reward=logged["reward"],
        action=logged["action"],
        position=logged["position"],
        pscore=logged["pscore"],
        action_dist=dist,
        estimators=["ipw", "snipw"],
    )
    rows = {row["estimator"]: row["value"] for row in out["estimates"]}
    assert rows["IPW"] == pytest.approx(ours["ipw"], rel=1e-12)
    assert rows["SNIPW"] == pytest.approx(ours["snipw"], rel=1e-12)
    # A float32 copy is read too; a wrongly shaped one is refused with the file's name.
    np.save(tmp_path / "dist32.npy", dist.astype(np.float32))
    metarec_cli("ope", "--action-dist", str(tmp_path / "dist32.npy"), "--resamples", "10")
    np.save(tmp_path / "short.npy", dist[:10])
    with pytest.raises(AssertionError, match="short.npy.*does not fit the log"):
        metarec_cli("ope", "--action-dist", str(tmp_path / "short.npy"))
