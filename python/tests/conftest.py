"""Shared fixtures: one fitted default scenario for the whole session (fitting takes seconds),
and the repository's paths."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

import metarec

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The data directory the Rust tests use ($METAREC_DATA, else ./data at the repository)."""
    return pathlib.Path(os.environ.get("METAREC_DATA", REPO / "data"))


@pytest.fixture(scope="session")
def sim(data_dir: pathlib.Path) -> metarec.Simulator:
    return metarec.Simulator("default", data_dir=str(data_dir))


@pytest.fixture(scope="session")
def metarec_cli(repo: pathlib.Path, data_dir: pathlib.Path):
    """Runs the `metarec` command line (built by cargo, `$METAREC_BIN` or target/debug/metarec)
    and returns its standard output."""
    binary = pathlib.Path(os.environ.get("METAREC_BIN", repo / "target" / "debug" / "metarec"))
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: build it with `cargo build -p metarec` (scripts/test does)")

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(binary), "--data-dir", str(data_dir), "--quiet", *args],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"metarec {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    return run
