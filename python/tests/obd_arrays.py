"""The Open Bandit sample as arrays, and a fixed evaluation policy and reward model on it: the
inputs on which metarec's estimators are compared with Open Bandit Pipeline's
(`test_ope.py`, `make_obp_reference.py`). NumPy only, and no randomness, so the arrays are the
same on every machine and with every NumPy version."""

from __future__ import annotations

import csv
import pathlib

import numpy as np


def load_obd(csv_path: str | pathlib.Path) -> dict:
    """The logged bandit feedback of an Open Bandit `all.csv`, as obp's `OpenBanditDataset`
    reads it: action = item_id, reward = click, pscore = propensity_score, position = the dense
    rank of the position column minus one (so 0, 1, 2), 80 actions, 3 positions. obp sorts the
    rows by timestamp; the sample's file is already in that order (checked, and the order obp's
    sort leaves is the file's), so rows are kept as they are."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    action = np.array([int(r["item_id"]) for r in rows], dtype=np.int64)
    raw_position = np.array([int(r["position"]) for r in rows], dtype=np.int64)
    levels = np.unique(raw_position)
    position = np.searchsorted(levels, raw_position).astype(np.int64)
    return {
        "reward": np.array([float(r["click"]) for r in rows]),
        "action": action,
        "position": position,
        "pscore": np.array([float(r["propensity_score"]) for r in rows]),
        "n_actions": int(action.max()) + 1,
        "len_list": len(levels),
    }


def action_dist(n_rounds: int, n_actions: int, len_list: int) -> np.ndarray:
    """A context-dependent softmax policy: logits are smooth functions of (round, action,
    position), so each round and position get a different, non-uniform distribution."""
    i = np.arange(n_rounds, dtype=np.float64)[:, None, None]
    a = np.arange(n_actions, dtype=np.float64)[None, :, None]
    k = np.arange(len_list, dtype=np.float64)[None, None, :]
    logits = 1.5 * np.sin(0.37 * a + 0.011 * i + 0.9 * k) + 0.8 * np.cos(0.13 * a * (k + 1.0))
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def estimated_rewards(
    reward: np.ndarray,
    action: np.ndarray,
    position: np.ndarray,
    n_actions: int,
    len_list: int,
    n_rounds: int,
) -> np.ndarray:
    """A reward model: each (action, position)'s click rate shrunk towards its position's with
    10 pseudo-observations, times a small deterministic per-round factor so the prediction
    varies by round; shape (n_rounds, n_actions, len_list), values in [0, 1]."""
    clicks = np.zeros((n_actions, len_list))
    shown = np.zeros((n_actions, len_list))
    np.add.at(clicks, (action, position), reward)
    np.add.at(shown, (action, position), 1.0)
    position_rate = clicks.sum(axis=0) / np.maximum(shown.sum(axis=0), 1.0)
    rate = (clicks + 10.0 * position_rate) / (shown + 10.0)
    factor = 1.0 + 0.1 * np.sin(0.05 * np.arange(n_rounds, dtype=np.float64))
    return np.clip(factor[:, None, None] * rate[None, :, :], 0.0, 1.0)


def obp_feedback(logged: dict) -> dict:
    """`logged` in the shape obp's `OffPolicyEvaluation` takes as `bandit_feedback`."""
    return {
        "n_rounds": len(logged["reward"]),
        "n_actions": logged["n_actions"],
        "action": logged["action"],
        "position": logged["position"],
        "reward": logged["reward"],
        "pscore": logged["pscore"],
    }
