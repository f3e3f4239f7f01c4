"""Type stubs of the extension module (crates/metarec-py)."""

from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

__version__: str

class Simulator:
    """A scenario fitted to its data: the world simulated users are drawn from."""

    def __init__(
        self,
        scenario: str = "default",
        *,
        shop: Optional[str] = None,
        data_dir: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def n_items(self) -> int: ...
    @property
    def slate_size(self) -> int: ...
    @property
    def history_length(self) -> int: ...
    @property
    def groups(self) -> list[str]: ...
    @property
    def item_keys(self) -> list[str]: ...
    @property
    def feature_names(self) -> list[str]: ...
    def item_features(self) -> npt.NDArray[np.float32]: ...
    def reward(self) -> dict[str, float]: ...

class Context:
    """What a policy knows when asked for a slate."""

    def __init__(
        self,
        user: str,
        *,
        tokens: Sequence[str] = ...,
        features: Sequence[float] = ...,
        history: Sequence[tuple[int, bool, bool]] = ...,
        session: int = 0,
        step: int = 0,
        candidates: Sequence[int] = ...,
        visit_events: int | None = None,
    ) -> None: ...
    @property
    def user(self) -> str: ...
    @property
    def tokens(self) -> list[str]: ...
    @property
    def features(self) -> list[float]: ...
    @property
    def session(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def visit_events(self) -> int | None: ...
    @property
    def history(self) -> list[tuple[int, bool, bool]]: ...
    @property
    def candidates(self) -> list[int]: ...
    def to_json(self) -> str: ...

class VecEnv:
    """Many simulated users stepped at once, under common random numbers."""

    def __init__(
        self,
        simulator: Simulator,
        n: int = 1,
        *,
        seed: Optional[int] = None,
        autoreset: bool = True,
    ) -> None: ...
    def __len__(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def next_user(self) -> int: ...
    def reset(
        self, users: Optional[Sequence[int]] = None, *, seed: Optional[int] = None
    ) -> dict[str, npt.NDArray[Any]]: ...
    def step(
        self, slates: npt.NDArray[np.int64]
    ) -> tuple[
        dict[str, npt.NDArray[Any]],
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        npt.NDArray[np.bool_],
        npt.NDArray[np.float64],
        npt.NDArray[np.uint64],
    ]: ...
    def context(self, i: int) -> Context: ...
    def reward(self) -> dict[str, float]: ...

class Policy:
    """A metarec policy by name: a baseline or a model bundle."""

    def __init__(self, name: str, simulator: Simulator, *, seed: int = 0) -> None: ...
    @property
    def name(self) -> str: ...
    def start_user(self, context: Context) -> None: ...
    def decide(
        self, context: Context, k: Optional[int] = None
    ) -> tuple[list[int], list[float]]: ...
    def observe(
        self,
        context: Context,
        slate: Sequence[int],
        propensities: Sequence[float],
        clicks: Sequence[bool],
        purchases: Sequence[bool],
        revenue: Sequence[float],
    ) -> None: ...
    def decide_batch(
        self, env: VecEnv, k: Optional[int] = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
    def observe_batch(
        self,
        clicks: npt.NDArray[np.bool_],
        purchases: npt.NDArray[np.bool_],
        revenue: npt.NDArray[np.float64],
    ) -> None: ...

class Trainer:
    """The neural policy in training on a simulator's training users."""

    def __init__(
        self,
        simulator: Simulator,
        *,
        algo: str = "reinforce",
        teacher: str = "informed",
        seed: int = 7,
        batch: int = 64,
        hidden: Optional[int] = None,
        embed: Optional[int] = None,
        learning_rate: Optional[float] = None,
        entropy: Optional[float] = None,
        user_streams: bool = True,
        memory: Optional[int] = None,
        imitate_depth: int = 0,
        rollout_temperature: Optional[float] = None,
    ) -> None: ...
    @property
    def iterations_done(self) -> int: ...
    @property
    def history(self) -> list[dict[str, float]]: ...
    def iteration(self) -> dict[str, float]: ...
    def batch_users(self) -> tuple[int, int]: ...
    def collect(self, first: int, end: int) -> bytes: ...
    def learn(self, parts: Sequence[bytes]) -> dict[str, float]: ...
    def weights(self) -> bytes: ...
    def set_weights(self, weights: bytes) -> None: ...
    def save(self, dir: str) -> None: ...

def policy_names() -> list[str]: ...
def arena_json(
    simulator: Simulator,
    policies: Sequence[str],
    *,
    users: int = 1000,
    seeds: int = 3,
    horizon: int = 20,
    threads: int = 0,
    against: Sequence[str] = ...,
) -> str: ...
def estimate(
    reward: npt.NDArray[np.float64],
    action: npt.NDArray[np.int64],
    position: npt.NDArray[np.int64],
    pscore: npt.NDArray[np.float64],
    action_dist: npt.NDArray[np.float64],
    estimated_rewards_by_reg_model: Optional[npt.NDArray[np.float64]] = None,
    *,
    estimators: Sequence[str],
    clip: Optional[float] = None,
    tau: float = 1.0,
    lambda_: float = 1.0,
    resamples: int = 0,
    seed: int = 1,
    propensity_floor: float = 1e-6,
) -> dict[str, dict[str, Optional[float]]]: ...
def arena_job_list(n_policies: int, seeds: int) -> list[tuple[int, int]]: ...
def arena_job(
    simulator: Simulator,
    policies: Sequence[str],
    c: int,
    s: int,
    *,
    users: int = 1000,
    seeds: int = 3,
    horizon: int = 20,
) -> bytes: ...
def arena_assemble_json(
    simulator: Simulator,
    policies: Sequence[str],
    results: Sequence[bytes],
    *,
    users: int = 1000,
    seeds: int = 3,
    horizon: int = 20,
    against: Sequence[str] = ...,
) -> str: ...
