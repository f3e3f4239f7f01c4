"""The arena and training on a local Ray cluster of 2 workers equal the single-process runs bit for
bit."""

from __future__ import annotations

import os

import pytest
import ray

import metarec
import metarec.ray


def test_ray_must_be_started_first():
    # Runs before the cluster fixture below starts one (tests run in file order).
    assert not ray.is_initialized()
    with pytest.raises(RuntimeError, match="ray.init"):
        metarec.ray.arena(["random"], users=1, seeds=1)
    with pytest.raises(RuntimeError, match="ray.init"):
        metarec.ray.train(1)


@pytest.fixture(scope="module")
def local_cluster():
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def drop_seconds(report: dict) -> dict:
    for c in report["contestants"]:
        c.pop("seconds")
    return report


def test_the_arena_on_ray_equals_the_single_process_run(local_cluster, sim, data_dir):
    args = dict(users=60, seeds=2, horizon=10, against=["random"])
    policies = ["random", "lints", "egreedy"]
    spread = metarec.ray.arena(policies, data_dir=str(data_dir), workers=2, **args)
    single = metarec.arena(sim, policies, **args)
    assert drop_seconds(spread) == drop_seconds(single)
    # Not vacuous: the contestants differ from each other.
    means = {c["policy"]: c["reward"]["mean"] for c in single["contestants"]}
    assert len(set(means.values())) == 3




def test_training_on_ray_equals_the_single_process_run(local_cluster, sim, data_dir):
    settings = dict(algo="distill", teacher="informed:20", seed=5, batch=8, hidden=16, embed=8)
    single = metarec.Trainer(sim, **settings)
    initial = single.weights()
    for _ in range(2):
        single.iteration()
    seen = []
    spread = metarec.ray.train(
        2, data_dir=str(data_dir), workers=2, on_iteration=seen.append, **settings
    )
    assert spread.weights() == single.weights()
    assert spread.history == single.history == seen
    assert single.weights() != initial, "training must change the network"
