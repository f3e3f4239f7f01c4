"""Training iterations per second in one process and spread over a local Ray cluster, with the
two networks compared bit for bit.

    python python/bench/ray_train.py [--iterations 4] [--workers 2] [--batch 256]
        [--algo distill] [--teacher informed:100] [--hidden 64] [--embed 32]

The defaults are `scripts/pretrain`'s settings. Build the package in release mode for
meaningful numbers: `scripts/peers-venv` makes .venv-peers with the release build and Ray.
"""

from __future__ import annotations

import argparse
import os
import time

import ray

import metarec
import metarec.ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--algo", default="distill")
    parser.add_argument("--teacher", default="informed:100")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--embed", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    settings = dict(
        algo=args.algo, teacher=args.teacher, batch=args.batch, hidden=args.hidden,
        embed=args.embed, seed=args.seed, entropy=0.0,
    )
    sim = metarec.Simulator("default")
    single = metarec.Trainer(sim, **settings)
    start = time.perf_counter()
    for _ in range(args.iterations):
        single.iteration()
    alone = time.perf_counter() - start
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    # The actors fit their simulators before the first iteration, so the rate counts from the
    # end of the first iteration to the end of the last.
    stamps: list[float] = []
    spread = metarec.ray.train(
        args.iterations, workers=args.workers,
        on_iteration=lambda _: stamps.append(time.perf_counter()), **settings
    )
    spread_s = (stamps[-1] - stamps[0]) / max(1, args.iterations - 1)
    ray.shutdown()
    same = spread.weights() == single.weights()
    print(f"{args.iterations} iterations of {args.batch} users ({args.algo}, {args.teacher})")
    print(f"{'where':<28} {'iterations/s':>12}")
    print(f"{'one process':<28} {args.iterations / alone:>12.3f}")
    print(f"{f'Ray, {args.workers} workers':<28} {1 / spread_s:>12.3f}")
    print(f"speed-up {alone / args.iterations / spread_s:.2f}x; the same network bit for bit: {same}")


if __name__ == "__main__":
    main()
