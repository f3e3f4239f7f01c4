"""Independent reference for `metarec ope --data obd --logs random --campaign all --policy bts`.

Recomputes, with NumPy only, what Open Bandit Pipeline 0.5.7's quickstart computes: the action
distribution of Bernoulli Thompson sampling under ZOZOTOWN's prior (top-3 of one Beta draw per
item, counted over n_sim slates, as `BernoulliTS.compute_batch_action_dist`), then IPW and SNIPW on
the random logs. Usage: python3 bench/obd_ope_reference.py DATA_DIR/obd [campaign] [n_sim] [seed]
"""
import csv
import sys

import numpy as np


def prior(path, campaign):
    out, cur, key = {}, None, None
    for line in open(path):
        s = line.rstrip()
        if not s.strip():
            continue
        if not s.startswith(" "):
            cur = s[:-1]
            out[cur] = {"alpha": [], "beta": []}
        elif s.strip().endswith(":"):
            key = s.strip()[:-1]
        else:
            out[cur][key].append(float(s.strip()[2:]))
    return np.array(out[campaign]["alpha"]), np.array(out[campaign]["beta"])


def main():
    obd = sys.argv[1]
    campaign = sys.argv[2] if len(sys.argv) > 2 else "all"
    n_sim = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 12345
    alpha, beta = prior(f"{obd}/prior_bts.yaml", campaign)
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), 3))
    for start in range(0, n_sim, 10_000):
        draws = rng.beta(alpha, beta, size=(min(10_000, n_sim - start), len(alpha)))
        top = np.argsort(-draws, axis=1)[:, :3]
        for k in range(3):
            counts[:, k] += np.bincount(top[:, k], minlength=len(alpha))
    dist = counts / n_sim
    rows = list(csv.DictReader(open(f"{obd}/random/{campaign}/{campaign}.csv")))
    a = np.array([int(r["item_id"]) for r in rows])
    k = np.array([int(r["position"]) - 1 for r in rows])
    r = np.array([float(r["click"]) for r in rows])
    p = np.array([float(r["propensity_score"]) for r in rows])
    w = dist[a, k] / p
    print(f"IPW {np.mean(w * r):.6f}")
    print(f"SNIPW {np.sum(w * r) / np.sum(w):.6f}")
    print(f"random on-policy {r.mean():.6f}")


if __name__ == "__main__":
    main()
