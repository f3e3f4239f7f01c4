"""A model bundle from Python (`neural:DIR`, `adjusted:DIR`), and the HTTP client against a real
`metarec serve` of that bundle."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

import metarec


@pytest.fixture(scope="module")
def tiny_model(metarec_cli, tmp_path_factory) -> pathlib.Path:
    """The smallest servable model: scenario `small`, 2 iterations of 8 users, an adjuster
    meta-trained on 8 users."""
    model = tmp_path_factory.mktemp("model") / "model"
    metarec_cli("train", "--scenario", "small", "--iterations", "2", "--batch", "8", "--out", str(model))
    metarec_cli("meta-train", "--scenario", "small", "--model", str(model), "--users", "8", "--grid", "0.3")
    return model


def test_a_model_bundle_plays_from_python(tiny_model, data_dir):
    small = metarec.Simulator("small", data_dir=str(data_dir))
    env = metarec.ShopEnv(simulator=small, seed=2)
    for name in (
        f"neural:{tiny_model}",
        f"neural-greedy:{tiny_model}",
        f"neural-static:{tiny_model}",
        f"adjusted:{tiny_model}",
    ):
        policy = metarec.Policy(name, small, seed=1)
        obs, info = env.reset(seed=2)
        context = info["context"]
        slate, propensities = policy.decide(context)
        assert len(slate) == small.slate_size and all(0 < p <= 1 for p in propensities)
        obs, reward, terminated, truncated, info = env.step(slate)
        policy.observe(
            context, slate, propensities,
            info["clicks"].tolist(), info["purchases"].tolist(), info["revenue"].tolist(),
        )
    # A bundle trained on another catalog is refused with the reason.
    default = metarec.Simulator("default", data_dir=str(data_dir))
    with pytest.raises(ValueError, match="another catalog"):
        metarec.Policy(f"neural:{tiny_model}", default)


@pytest.fixture()
def server(tiny_model, repo, data_dir, tmp_path):
    binary = os.environ.get("METAREC_BIN", str(repo / "target" / "debug" / "metarec"))
    env = dict(os.environ, METAREC_API_KEYS="admin:py-secret-token-0123456789", METAREC_PSEUDONYM_KEY="py-test-secret-0123456")
    child = subprocess.Popen(
        [binary, "--data-dir", str(data_dir), "-q", "serve", "--model", str(tiny_model),
         "--db", str(tmp_path / "events.db"), "--addr", "127.0.0.1:0", "--workers", "2"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert "http://" in line, line
        url = "http://" + line.split("http://")[1].split()[0]
        yield url
    finally:
        child.kill()
        child.wait()


def test_the_client_ranks_records_feedback_and_rewards(server):
    client = metarec.Client(server, "py-secret-token-0123456789")
    assert client.health()["status"] == "ok"
    answer = client.rank("alice", slate_size=3)
    assert len(answer["slate"]) == 3
    event = answer["event_id"]
    clicked = client.feedback(event, "click", position=1)
    assert clicked["duplicate"] is False
    assert client.feedback(event, "click", position=1)["duplicate"] is True
    assert client.reward(event, 2.5)["value"] == 2.5
    # A retry with the client's own event id gets the first answer again.
    first = client.rank("bob", slate_size=2, event_id="order-17")
    assert client.rank("bob", slate_size=2, event_id="order-17") == first
    with pytest.raises(metarec.ServerError) as e:
        client.feedback("no-such-event", "click", position=0)
    assert e.value.status == 404 and e.value.code == "unknown_event"
    with pytest.raises(metarec.ServerError) as e:
        metarec.Client(server, "wrong-token").rank("alice")
    assert e.value.status == 401
    with pytest.raises(metarec.ServerError) as e:
        client.rank("alice", slate_size=-1)
    assert e.value.status == 422
