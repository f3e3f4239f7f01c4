"""What a careless or hostile caller sends: every bad argument is a ValueError, TypeError or
OverflowError with a message, never a Rust panic (pyo3's PanicException) or a crash, and a
refused call changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import metarec
from metarec import ope

ALLOWED = (ValueError, TypeError, OverflowError)


def junk_arrays(rng: np.random.Generator):
    """Arrays of odd shapes, types and values."""
    shapes = [(), (0,), (1,), (3,), (0, 5), (2, 0), (2, 5), (2, 7), (1, 5, 1), (4, 5)]
    values = [
        lambda s: rng.integers(-5, 600, s),
        lambda s: rng.normal(size=s) * 1e3,
        lambda s: np.full(s, np.nan),
        lambda s: np.full(s, np.inf),
        lambda s: np.full(s, 2**62, dtype=np.int64),
        lambda s: rng.random(s) < 0.5,
        lambda s: np.full(s, "x", dtype=object),
    ]
    for shape in shapes:
        for make in values:
            yield make(shape)
    yield [[0, 1, 2, 3, 4]] * 2
    yield "not an array"
    yield None


def call(f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except ALLOWED as e:
        assert str(e), f"{f}: an error without a message"
    # Anything else, PanicException included, fails the test.


def valid(junk, shape, n_items) -> bool:
    a = np.asarray(junk) if junk is not None and not isinstance(junk, str) else np.array(0.5)
    return (
        a.shape == shape
        and a.dtype != np.bool_
        and np.issubdtype(a.dtype, np.integer)
        and bool(((a >= 0) & (a < n_items)).all())
    )


def test_junk_slates_never_panic_and_change_nothing(sim):
    rng = np.random.default_rng(0)
    env = metarec.VecEnv(sim, 2, seed=5)
    env.reset()
    accepted = []
    for junk in junk_arrays(rng):
        before = env.steps
        try:
            env.step(junk)
            accepted.append(np.asarray(junk, dtype=np.int64))
        except ALLOWED as e:
            assert str(e) and env.steps == before
    # A twin given only the accepted batches is in the same state: refused ones changed nothing.
    twin = metarec.VecEnv(sim, 2, seed=5)
    twin.reset()
    for batch in accepted:
        twin.step(batch)
    good = np.arange(10, dtype=np.int64).reshape(2, 5)
    assert env.step(good)[1].tolist() == twin.step(good)[1].tolist()
    shop = metarec.ShopEnv(simulator=sim, seed=1)
    vec = metarec.VecShopEnv(2, simulator=sim, seed=1)
    vec.reset()
    for junk in junk_arrays(rng):
        shop.reset()
        if valid(junk, (sim.slate_size,), sim.n_items):
            shop.step(junk)
        else:
            with pytest.raises(ValueError):
                shop.step(junk)
        if valid(junk, (2, sim.slate_size), sim.n_items):
            vec.step(junk)
        else:
            with pytest.raises(ValueError):
                vec.step(junk)


def test_junk_for_policies_and_contexts_never_panics(sim):
    rng = np.random.default_rng(1)
    policy = metarec.Policy("lints", sim, seed=1)
    ctx = metarec.Context("u")
    for junk in junk_arrays(rng):
        call(policy.observe, ctx, junk, junk, junk, junk, junk)
        call(policy.decide, ctx, junk)
        call(metarec.Context, "u", history=junk)
        call(metarec.Context, "u", features=junk)
        call(metarec.Context, "u", candidates=junk)
        call(metarec.Context, "u", visit_events=junk)
        call(policy.observe_batch, junk, junk, junk)
    for k in (0, -1, 10**6, 2**70):
        call(policy.decide, ctx, k)
    call(metarec.Policy, "\0", sim)
    call(metarec.Policy, "neural:/no/such/dir", sim)
    call(metarec.VecEnv, sim, 0)
    call(metarec.VecEnv, sim, -1)
    call(metarec.VecEnv, sim, 10**9)


def test_junk_for_the_estimators_never_panics():
    rng = np.random.default_rng(2)
    n = 20
    good = dict(
        reward=rng.random(n),
        action=rng.integers(0, 4, n),
        position=np.zeros(n, dtype=np.int64),
        pscore=np.full(n, 0.25),
        action_dist=np.full((n, 4, 1), 0.25),
    )
    for name in list(good):
        for junk in junk_arrays(rng):
            call(ope.estimate_intervals, **{**good, name: junk}, resamples=3)
    for resamples in (-1, 2**70):
        call(ope.estimate_intervals, **good, resamples=resamples)
    for clip in (0.0, -1.0, float("nan"), float("inf")):
        call(ope.estimate_policy_values, **good, clip=clip)
    for floor in (0.0, 2.0, float("nan")):
        call(ope.estimate_policy_values, **good, propensity_floor=floor)
