"""The network's training from Python: the same network as `metarec train`, a batch split into
parts (as Ray workers play it) equal to one process, bundles that play, and clear errors."""

from __future__ import annotations

import json

import pytest

import metarec

SMALL = dict(algo="reinforce", seed=3, batch=6, hidden=16, embed=8)


def test_the_python_trainer_trains_what_the_command_line_trains(sim, metarec_cli, tmp_path):
    metarec_cli(
        "train", "--scenario", "default", "--algo", "reinforce", "--iterations", "2",
        "--batch", "6", "--hidden", "16", "--embed", "8", "--seed", "3", "--user-streams",
        "--out", str(tmp_path / "cli"),
    )
    trainer = metarec.Trainer(sim, **SMALL)
    for _ in range(2):
        trainer.iteration()
    trainer.save(str(tmp_path / "py"))
    cli = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    py = json.loads((tmp_path / "py" / "manifest.json").read_text())
    assert py["weights_sha256"] == cli["weights_sha256"]
    assert py["metrics"] == cli["metrics"]
    # The saved bundle is a policy like any other.
    policy = metarec.Policy(f"neural:{tmp_path / 'py'}", sim, seed=1)
    env = metarec.ShopEnv(simulator=sim)
    assert metarec.play(env, policy, 5, seed=1).shape == (5,)


@pytest.mark.parametrize(
    "settings",
    [SMALL, {**SMALL, "algo": "posterior", "rollout_temperature": 0.2}],
    ids=["reinforce", "posterior"],
)
def test_a_batch_collected_in_parts_trains_as_one_process(sim, settings):
    # Posterior distillation's parts also carry every item's value in every state.
    whole = metarec.Trainer(sim, **settings)
    learner = metarec.Trainer(sim, **settings)
    worker = metarec.Trainer(sim, **settings)
    initial = whole.weights()
    for _ in range(2):
        whole.iteration()
        first, end = learner.batch_users()
        worker.set_weights(learner.weights())
        parts = [worker.collect(first, first + 2), worker.collect(first + 2, end)]
        learner.learn(parts)
    assert learner.weights() == whole.weights()
    assert learner.history == whole.history
    assert whole.weights() != initial, "training must change the network"


def test_bad_arguments_and_bytes_are_value_errors_that_change_nothing(sim):
    trainer = metarec.Trainer(sim, **SMALL)
    weights = trainer.weights()
    first, end = trainer.batch_users()
    part = trainer.collect(first, end)
    with pytest.raises(ValueError, match="batch has 6 users"):
        trainer.learn([trainer.collect(first, first + 3)])
    with pytest.raises(ValueError, match=r"parts\[0\]"):
        trainer.learn([part[:-1]])
    with pytest.raises(ValueError, match=r"parts\[1\]"):
        trainer.learn([part, b"\xff" * 9])
    with pytest.raises(ValueError, match="first <= end"):
        trainer.collect(end, first)
    with pytest.raises(ValueError, match="bytes"):
        trainer.set_weights(weights[:-4])
    assert trainer.weights() == weights
    assert trainer.iterations_done == 0
    with pytest.raises(ValueError, match="supervised"):
        metarec.Trainer(sim, algo="supervised")
    with pytest.raises(ValueError, match="teacher must be"):
        metarec.Trainer(sim, algo="distill", teacher="lints")
    with pytest.raises(ValueError):
        metarec.Trainer(sim, algo="nonsense")
    for batch in (0, 10**9):
        with pytest.raises(ValueError, match="batch"):
            metarec.Trainer(sim, batch=batch)
    with pytest.raises(ValueError, match="hidden"):
        metarec.Trainer(sim, hidden=10**6)
    with pytest.raises(ValueError, match="rollout temperature"):
        metarec.Trainer(sim, algo="reinforce", rollout_temperature=0.2)
    with pytest.raises(ValueError, match="rollout_temperature"):
        metarec.Trainer(sim, algo="posterior", rollout_temperature=0.0)
    with pytest.raises(ValueError, match="imitate_depth"):
        metarec.Trainer(sim, algo="distill", teacher="informed:10", imitate_depth=10**3)
    with pytest.raises(OverflowError):
        metarec.Trainer(sim, batch=-1)
