"""Writes data/obp_reference.json: Open Bandit Pipeline's IPW, SNIPW and DR on the Open Bandit
sample (the random logs, campaign all) with the evaluation policy and reward model of
obd_arrays.py, which test_ope.py checks metarec's estimators against to 1e-9.

    python make_obp_reference.py PATH/TO/obd/random/all/all.csv

It needs obp (`pip install --no-deps obp` and its numerical dependencies). obp imports PyTorch at
module level, for its neural policies and for annotations, but the three estimators' NumPy path
never calls it; when PyTorch is not installed a stand-in module is put in its place (printed),
so no gigabytes of PyTorch are needed to compute these numbers. The same formulas are also
computed here with NumPy alone, and must agree to 1e-12.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import json
import pathlib
import sys
import types

import numpy as np

import obd_arrays


class _StandIn(types.ModuleType):
    """A module whose every capitalised attribute is a class and every other one a module, which
    is all `import torch` and obp's annotations need."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (), {}) if name[:1].isupper() else _StandIn(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torch" or fullname.startswith("torch."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def main() -> None:
    csv_path = pathlib.Path(sys.argv[1])
    try:
        import torch  # noqa: F401

        stand_in = False
    except ImportError:
        sys.meta_path.insert(0, _StandInFinder())
        stand_in = True
        print("PyTorch is not installed: a stand-in module takes its place for obp's imports")
    import obp
    from obp.ope import (
        DoublyRobust,
        InverseProbabilityWeighting,
        OffPolicyEvaluation,
        SelfNormalizedInverseProbabilityWeighting,
    )

    logged = obd_arrays.load_obd(csv_path)
    n = len(logged["reward"])
    dist = obd_arrays.action_dist(n, logged["n_actions"], logged["len_list"])
    q = obd_arrays.estimated_rewards(
        logged["reward"], logged["action"], logged["position"],
        logged["n_actions"], logged["len_list"], n,
    )
    estimates = OffPolicyEvaluation(
        bandit_feedback=obd_arrays.obp_feedback(logged),
        ope_estimators=[
            InverseProbabilityWeighting(),
            SelfNormalizedInverseProbabilityWeighting(),
            DoublyRobust(),
        ],
    ).estimate_policy_values(action_dist=dist, estimated_rewards_by_reg_model=q)
    # The same formulas with NumPy alone.
    rows = np.arange(n)
    a, k, r = logged["action"], logged["position"], logged["reward"]
    w = dist[rows, a, k] / logged["pscore"]
    dm = (dist[rows, :, k] * q[rows, :, k]).sum(axis=1)
    plain = {
        "ipw": float((w * r).mean()),
        "snipw": float((w * r).sum() / w.sum()),
        "dr": float((dm + w * (r - q[rows, a, k])).mean()),
    }
    for name, value in plain.items():
        print(f"{name:6} obp {estimates[name]!r:24} numpy {value!r}")
        assert abs(estimates[name] - value) <= 1e-12, name
    out = {
        "note": "Open Bandit Pipeline's estimate_policy_values on the arrays of obd_arrays.py; made by python/tests/make_obp_reference.py"
        + (" (with a stand-in for PyTorch, which these estimators never call)" if stand_in else ""),
        "obp_version": obp.__version__,
        "numpy_version": np.__version__,
        "data": csv_path.name,
        "data_sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest(),
        "n_rounds": n,
        "estimates": {name: float(estimates[name]) for name in ("ipw", "snipw", "dr")},
    }
    target = pathlib.Path(__file__).resolve().parent / "data" / "obp_reference.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
