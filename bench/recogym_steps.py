"""Baseline for `metarec bench sim`: RecoGym's simulated steps per second with a random agent.

RecoGym (Rohde et al. 2018, https://github.com/criteo-research/reco-gym) shows one product per
step. This script times its bandit steps (env.step with an action) for a random agent on
`reco-gym-v1` with the given number of products, and prints steps per second on stdout.

Usage: python recogym_steps.py PRODUCTS STEPS
Install: scripts/peers-venv (pins versions under which RecoGym 0.1.3.0 still runs).
"""
import sys
import time

from recogym import Configuration, env_1_args
from recogym.agents.random_agent import RandomAgent, random_args
from recogym.envs.reco_env_v1 import RecoEnv1


def main():
    n_products = int(sys.argv[1])
    steps_target = int(sys.argv[2])
    args = dict(env_1_args)
    args["num_products"] = n_products
    args["random_seed"] = 42
    # RecoEnv1 directly rather than gym.make: newer gym's environment checker rejects RecoGym.
    env = RecoEnv1()
    env.init_gym(args)
    agent = RandomAgent(Configuration({**random_args, "num_products": n_products}))
    steps = 0
    start = time.perf_counter()
    while steps < steps_target:
        env.reset()
        observation, reward, done, _ = env.step(None)
        while not done:
            action = agent.act(observation, reward, done)
            observation, reward, done, _ = env.step(action["a"])
            steps += 1
    print(steps / (time.perf_counter() - start))


if __name__ == "__main__":
    main()
