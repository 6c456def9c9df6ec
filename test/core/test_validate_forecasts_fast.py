"""validate_forecasts screens all agents in one batched pass; every problem must still raise, naming its agent."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rap_planner.core.scenarios import InvalidForecast, validate_forecasts
from rap_planner.core.types import AgentForecast, ForecastSet

STEPS = 25


def agent(agent_id: int, k: int, samples: int = 0, seed: int = 0) -> AgentForecast:
    rng = np.random.default_rng(seed)
    means = rng.uniform(-1e3, 1e3, 2) + rng.normal(0.0, 20.0, (k, STEPS, 2))
    cov = np.zeros((k, STEPS, 2, 2))
    cov[..., 0, 0] = cov[..., 1, 1] = rng.uniform(0.1, 4.0, (k, STEPS))
    return AgentForecast(agent_id, rng.dirichlet(np.ones(k)), means, cov,
                         samples_m=rng.normal(1e3, 5.0, (samples, STEPS, 2)) if samples else None)


def many(samples: int = 0) -> ForecastSet:
    """200 agents, 32 with 6 modes and 168 with 1, as the stack sees at full load."""
    agents = [agent(10 + i, 6 if i % 6 == 0 and i < 192 else 1, samples, seed=i) for i in range(200)]
    return ForecastSet(100.0, 0.2, STEPS, agents, np.full(samples, 1.0 / samples) if samples else None)


def with_agent(fs: ForecastSet, index: int, **changes) -> ForecastSet:
    agents = list(fs.agents)
    agents[index] = dataclasses.replace(agents[index], **changes)
    return dataclasses.replace(fs, agents=agents)


def nan_at(values: np.ndarray, value: float = math.nan) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    out.flat[out.size // 2] = value
    return out


@pytest.mark.parametrize("samples", [0, 4])
def test_a_full_good_set_passes(samples):
    validate_forecasts(many(samples))
    validate_forecasts(ForecastSet(0.0, 0.1, 3, []))


def test_unusual_but_valid_inputs_pass():
    fs = many()
    a = fs.agents[6]
    for changes in ({"weights": list(a.weights)}, {"means_m": a.means_m.astype(np.float32)},
                    {"weights": np.ones(len(a.weights), dtype=np.int64)}, {"length_m": 5},
                    {"length_m": np.float32(4.5)}, {"means_m": np.full_like(a.means_m, 1e300)},
                    {"weights": np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1e-300])}):
        validate_forecasts(with_agent(fs, 6, **changes))


@pytest.mark.parametrize("changes, match", [
    ({"means_m": "nan"}, r"non-finite input: forecast of agent 37 means_m"),
    ({"covariances_m2": "inf"}, r"non-finite input: forecast of agent 37 covariances_m2"),
    ({"weights": "nan"}, r"non-finite input: forecast of agent 37 weights"),
    ({"means_m": "huge"}, r"non-finite input: forecast of agent 37 means_m"),  # finite values, infinite sum
    ({"means_m": "short"}, r"invalid input: forecast of agent 37 has weights \(1,\), means \(1, 24, 2\)"),
    ({"covariances_m2": "2d"}, r"invalid input: forecast of agent 37 has weights .* covariances \(1, 25, 4\)"),
    ({"weights": np.ones((1, 1))}, r"invalid input: forecast of agent 37 has weights \(1, 1\)"),
    ({"weights": np.ones(0)}, r"invalid input: forecast of agent 37 has weights \(0,\)"),
    ({"weights": np.array([-1.0])}, r"invalid input: forecast of agent 37 mode weights must be non-negative"),
    ({"weights": np.array([0.0])}, r"invalid input: forecast of agent 37 mode weights must be non-negative"),
    ({"length_m": math.nan}, r"non-finite input: forecast of agent 37 footprint"),
    ({"width_m": -math.inf}, r"non-finite input: forecast of agent 37 footprint"),
])
def test_each_problem_raises_and_names_the_agent(changes, match):
    fs = many()
    a = fs.agents[27]  # agent 37, one mode
    special = {"nan": lambda v: nan_at(v), "inf": lambda v: nan_at(v, math.inf),
               "huge": lambda v: np.full_like(v, 1e308), "short": lambda v: v[:, :-1],
               "2d": lambda v: v.reshape(len(v), STEPS, 4)}
    changes = {k: special[v](getattr(a, k)) if isinstance(v, str) else v for k, v in changes.items()}
    with pytest.raises(InvalidForecast, match=match):
        validate_forecasts(with_agent(fs, 27, **changes))


def test_the_first_bad_agent_is_named():
    fs = many()
    fs = with_agent(fs, 150, weights=np.array([-1.0]))
    fs = with_agent(fs, 40, length_m=math.inf)
    fs = with_agent(fs, 90, means_m=fs.agents[90].means_m[:, :3])
    with pytest.raises(InvalidForecast, match="agent 50 footprint"):
        validate_forecasts(fs)
    # within one agent the checks keep their order: non-finite values before shapes before weights
    with pytest.raises(InvalidForecast, match="agent 50 means_m"):
        validate_forecasts(with_agent(fs, 40, means_m=nan_at(fs.agents[40].means_m[:, :3]), weights=np.zeros(1)))


def test_samples_are_checked():
    fs = many(samples=4)
    a = fs.agents[12]
    with pytest.raises(InvalidForecast, match=r"non-finite input: forecast of agent 22 samples_m"):
        validate_forecasts(with_agent(fs, 12, samples_m=nan_at(a.samples_m)))
    with pytest.raises(InvalidForecast, match=r"agent 22 samples_m \(3, 25, 2\), expected \(S, 25, 2\), same S"):
        validate_forecasts(with_agent(fs, 12, samples_m=a.samples_m[:3]))
    with pytest.raises(InvalidForecast, match=r"agent 22 samples_m \(4, 24, 2\)"):
        validate_forecasts(with_agent(fs, 12, samples_m=a.samples_m[:, 1:]))
    with pytest.raises(InvalidForecast, match=r"agent 22 samples_m \(100,\)"):
        validate_forecasts(with_agent(fs, 12, samples_m=a.samples_m[..., 0].ravel()))
    validate_forecasts(with_agent(fs, 12, samples_m=None))  # agents without samples get Gaussian draws
    validate_forecasts(with_agent(fs, 12, samples_m=a.samples_m.astype(np.float32)))


@pytest.mark.parametrize("weights", [np.ones(3), -np.ones(4), np.zeros(4), np.array([1.0, math.nan, 1.0, 1.0])])
def test_sample_weights_are_checked_against_the_sample_count(weights):
    with pytest.raises(InvalidForecast, match="sample_weights"):
        validate_forecasts(dataclasses.replace(many(samples=4), sample_weights=weights))


def test_header_checks():
    with pytest.raises(InvalidForecast, match="forecasts.stamp_s"):
        validate_forecasts(ForecastSet(math.nan, 0.2, STEPS, []))
    with pytest.raises(InvalidForecast, match="dt_s > 0 and num_steps >= 1"):
        validate_forecasts(ForecastSet(0.0, 0.2, 0, []))
