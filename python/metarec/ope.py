"""Off-policy estimators on numpy arrays in Open Bandit Pipeline's shapes.

A policy trained anywhere is judged from its action distribution over the logged rounds:
``action_dist[i, a, k]`` is the probability that it shows action ``a`` at position ``k`` in
round ``i`` (shape ``(n_rounds, n_actions, len_list)``), as ``obp`` passes it. The logged data
are one entry per round: ``reward``, ``action``, ``position`` and the logging policy's
``pscore``. ``estimated_rewards_by_reg_model`` (same shape as ``action_dist``) is the reward
model the direct method and the doubly robust estimators need.

Estimator names are obp's: ``dm``, ``ipw``, ``snipw``, ``dr``, ``sndr``, ``switch-dr``
(threshold ``tau``), ``dr-os`` (shrinkage ``lambda_``). Without clipping, IPW, SNIPW and DR
equal obp's on the same arrays (tested to 1e-9 on the Open Bandit sample).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from metarec import _metarec

__all__ = ["estimate_policy_values", "estimate_intervals"]


def _arrays(
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any,
    estimated_rewards_by_reg_model: Any,
) -> tuple[np.ndarray, ...]:
    for name, a in (("action", action), ("position", position)):
        if a is not None:
            a = np.asarray(a)
            if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} holds {a.dtype} values; expected integers")
    reward = np.ascontiguousarray(reward, dtype=np.float64)
    action = np.ascontiguousarray(action, dtype=np.int64)
    pscore = np.ascontiguousarray(pscore, dtype=np.float64)
    dist = np.ascontiguousarray(action_dist, dtype=np.float64)
    if dist.ndim == 2:
        dist = dist[:, :, None]
    if dist.ndim != 3:
        raise ValueError(
            f"action_dist must have shape (n_rounds, n_actions, len_list), not {dist.shape}"
        )
    if position is None:
        position = np.zeros(len(reward), dtype=np.int64)
    position = np.ascontiguousarray(position, dtype=np.int64)
    q = estimated_rewards_by_reg_model
    if q is not None:
        q = np.ascontiguousarray(q, dtype=np.float64)
        if q.ndim == 2:
            q = q[:, :, None]
    for name, a in (("reward", reward), ("action", action), ("pscore", pscore), ("position", position)):
        if a.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, not of shape {a.shape}")
    return reward, action, position, pscore, dist, q


def estimate_intervals(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards_by_reg_model: Any = None,
    estimators: Sequence[str] | None = None,
    clip: float | None = None,
    tau: float = 1.0,
    lambda_: float = 1.0,
    resamples: int = 1000,
    seed: int = 1,
    propensity_floor: float = 1e-6,
) -> dict[str, dict[str, float | None]]:
    """Per estimator: ``value``, the bootstrap 95% interval ``low`` and ``high`` (``resamples``
    Poisson-bootstrap draws from ``seed``), ``std_error`` and the effective sample size ``ess``.
    ``clip`` caps the importance weights. A propensity below ``propensity_floor`` is an error.
    ``estimators`` defaults to IPW and SNIPW, and DR when a reward model is given."""
    reward, action, position, pscore, dist, q = _arrays(
        reward, action, pscore, action_dist, position, estimated_rewards_by_reg_model
    )
    if estimators is None:
        estimators = ("ipw", "snipw") if q is None else ("ipw", "snipw", "dr")
    return _metarec.estimate(
        reward,
        action,
        position,
        pscore,
        dist,
        q,
        estimators=list(estimators),
        clip=clip,
        tau=tau,
        lambda_=lambda_,
        resamples=resamples,
        seed=seed,
        propensity_floor=propensity_floor,
    )


def estimate_policy_values(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards_by_reg_model: Any = None,
    estimators: Sequence[str] | None = None,
    clip: float | None = None,
    tau: float = 1.0,
    lambda_: float = 1.0,
    propensity_floor: float = 1e-6,
) -> dict[str, float]:
    """The estimated policy value per estimator, as obp's
    ``OffPolicyEvaluation.estimate_policy_values`` returns them."""
    out = estimate_intervals(
        reward=reward,
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
        estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
        estimators=estimators,
        clip=clip,
        tau=tau,
        lambda_=lambda_,
        resamples=0,
        propensity_floor=propensity_floor,
    )
    return {name: float(e["value"]) for name, e in out.items()}
