"""The arena and the network's training spread over a Ray cluster (``pip install ray``; import
as ``metarec.ray``).

The arena's jobs (one contestant on one seed's users) are independent and each user's luck comes
from common random numbers, so jobs can run anywhere: here each Ray worker holds one fitted
simulator (an actor) and plays the jobs it is given; the results come back as bytes that carry
every number exactly, and the report is assembled from them in the same order as in one process.
The result is the single-process :func:`metarec.arena`'s, bit for bit (tested on a local cluster
of 2 workers), apart from the seconds each contestant took.

On a real cluster: start Ray on the nodes (``ray start --head`` on one, ``ray start --address
HEAD:6379`` on the others), install the same ``metarec`` wheel on every node, and call
``ray.init(address="auto")`` before :func:`arena`. Online Retail is unpacked from the module on
each node into ``data_dir``; a shop directory or a model directory (``neural:DIR``) must be at
the same path on every node.

:func:`train` spreads each training iteration's users the same way: the learner (here) sends its
weights to the workers, each plays a consecutive part of the batch's users with them (and the
teacher, in distillation) and returns the episodes as bytes, and the learner takes one optimiser
step on the parts in order. Each training user's slates come from a stream of their own
(``user_streams``), so the network equals :class:`metarec.Trainer`'s trained in one process with
the same settings, bit for bit (tested on a local cluster of 2 workers).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import ray

from metarec._metarec import Simulator, Trainer, arena_assemble_json, arena_job, arena_job_list


@ray.remote
class _Player:
    """One worker's simulator, fitted once, playing the jobs it is given."""

    def __init__(self, scenario: str, shop: str | None, data_dir: str | None, seed: int | None):
        self.simulator = Simulator(scenario, shop=shop, data_dir=data_dir, seed=seed)

    def play(self, policies: list[str], c: int, s: int, users: int, seeds: int, horizon: int) -> bytes:
        return arena_job(self.simulator, policies, c, s, users=users, seeds=seeds, horizon=horizon)

    def assemble(
        self, policies: list[str], results: list[bytes], users: int, seeds: int, horizon: int, against: list[str]
    ) -> str:
        return arena_assemble_json(
            self.simulator, policies, results, users=users, seeds=seeds, horizon=horizon, against=against
        )


@ray.remote
class _Collector:
    """One worker's simulator and trainer, playing parts of the learner's batches."""

    def __init__(
        self, scenario: str, shop: str | None, data_dir: str | None, seed: int | None, settings: dict
    ):
        simulator = Simulator(scenario, shop=shop, data_dir=data_dir, seed=seed)
        self.trainer = Trainer(simulator, **settings)

    def collect(self, weights: bytes, first: int, end: int) -> bytes:
        self.trainer.set_weights(weights)
        return self.trainer.collect(first, end)


def _require_ray() -> None:
    if not ray.is_initialized():
        raise RuntimeError(
            "Ray is not initialised: call ray.init() (a local cluster) or "
            "ray.init(address='auto') (a running one) first"
        )


def train(
    iterations: int,
    *,
    scenario: str = "default",
    shop: str | None = None,
    data_dir: str | None = None,
    scenario_seed: int | None = None,
    workers: int | None = None,
    trainer: Trainer | None = None,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
    **settings: Any,
) -> Trainer:
    """Trains for ``iterations`` iterations with each batch's users split over ``workers`` Ray
    actors (default: the cluster's CPUs, at most one per user) and returns the learner, a
    :class:`metarec.Trainer` (``save(dir)`` writes the model bundle). ``settings`` are
    :class:`metarec.Trainer`'s keyword arguments (``algo``, ``teacher``, ``seed``, ``batch``,
    ...); ``scenario``, ``shop``, ``data_dir`` and ``scenario_seed`` (the scenario's own seed,
    as ``seed`` is in :class:`metarec.Simulator`) say which simulator every process fits.
    ``user_streams`` must stay on. ``trainer`` continues a learner made with the same
    simulator and ``settings`` instead of starting a new one. ``on_iteration`` gets each
    iteration's statistics (progress)."""
    _require_ray()
    if iterations < 0:
        raise ValueError(f"iterations = {iterations}: must be at least 0")
    if not settings.setdefault("user_streams", True):
        raise ValueError(
            "user_streams=False: a batch split over workers needs each user's own stream"
        )
    if trainer is None:
        trainer = Trainer(
            Simulator(scenario, shop=shop, data_dir=data_dir, seed=scenario_seed), **settings
        )
    first, end = trainer.batch_users()
    batch = end - first
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = max(1, min(workers, batch))
    collectors = [
        _Collector.remote(scenario, shop, data_dir, scenario_seed, settings) for _ in range(workers)
    ]
    try:
        for _ in range(iterations):
            first, end = trainer.batch_users()
            weights = ray.put(trainer.weights())
            cuts = [first + (end - first) * w // workers for w in range(workers + 1)]
            parts = ray.get(
                [c.collect.remote(weights, a, b) for c, a, b in zip(collectors, cuts, cuts[1:])]
            )
            stats = trainer.learn(parts)
            if on_iteration is not None:
                on_iteration(stats)
    finally:
        for c in collectors:
            ray.kill(c)
    return trainer


def arena(
    policies: Sequence[str],
    *,
    scenario: str = "default",
    shop: str | None = None,
    data_dir: str | None = None,
    seed: int | None = None,
    users: int = 1000,
    seeds: int = 3,
    horizon: int = 20,
    against: Sequence[str] = ("popularity",),
    workers: int | None = None,
) -> dict[str, Any]:
    """:func:`metarec.arena` with the jobs spread over ``workers`` Ray actors (default: the
    cluster's CPUs, at most one per job). The scenario is named, not passed fitted: each worker
    fits its own copy (the same world, since fitting is seeded)."""
    _require_ray()
    policies = list(policies)
    jobs = arena_job_list(len(policies), seeds)
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = max(1, min(workers, len(jobs)))
    players = [_Player.remote(scenario, shop, data_dir, seed) for _ in range(workers)]
    futures = [
        players[j % workers].play.remote(policies, c, s, users, seeds, horizon)
        for j, (c, s) in enumerate(jobs)
    ]
    results = ray.get(futures)
    report = ray.get(
        players[0].assemble.remote(policies, results, users, seeds, horizon, list(against))
    )
    for p in players:
        ray.kill(p)
    return json.loads(report)
