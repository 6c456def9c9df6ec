"""Joint scenarios (weighted samples of every agent's future) from a ForecastSet.

Per agent and scenario a mode is drawn from the mode weights, then one standard-normal 2-vector
is scaled by the per-step Cholesky factor of that mode: one draw per trajectory keeps it temporally
coherent (a sample is "the mean shifted by k sigma", not white noise around it). Mode draws are
stratified (systematic resampling, then shuffled per agent): each mode's share of the S scenarios
matches its weight to within one scenario, so a 20 % mode is present even at small S while every
scenario keeps weight 1/S. Samples that come with the forecast (risk-biased samples from the
predictor) are used as given, with their importance weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rap_planner.core.types import AgentForecast, ForecastSet
from rap_planner.core.validation import check_forecast_set, sample_weights_problem


class InvalidForecast(ValueError):
    """A forecast that cannot be used; the message says what is wrong."""


@dataclass
class Scenarios:
    """S weighted joint scenarios of N agents on a time grid of T steps."""

    positions_m: np.ndarray  # (S, N, T, 2) world frame
    weights: np.ndarray  # (S,) probabilities, sum to 1
    times_s: np.ndarray  # (T,) absolute times of the steps
    agent_ids: np.ndarray  # (N,)
    lengths_m: np.ndarray  # (N,)
    widths_m: np.ndarray  # (N,)

    @property
    def num_scenarios(self) -> int:
        return int(self.positions_m.shape[0])

    @property
    def num_agents(self) -> int:
        return int(self.positions_m.shape[1])


def validate_forecasts(forecasts: ForecastSet) -> None:
    """Raise InvalidForecast (a ValueError) naming the first unusable field.

    The agents are checked by ``core.validation.check_forecast_set`` under ``CORE_RULES`` (finite values, consistent
    shapes, usable weights), all at once; the message names the first bad agent's first problem.
    """
    for name in ("stamp_s", "dt_s"):
        if not math.isfinite(getattr(forecasts, name)):
            raise InvalidForecast(f"non-finite input: forecasts.{name}")
    if forecasts.dt_s <= 0.0 or forecasts.num_steps < 1:
        raise InvalidForecast("invalid input: forecasts need dt_s > 0 and num_steps >= 1")
    checks = check_forecast_set(forecasts)
    if (bad := checks.first_bad()) is not None:
        raise InvalidForecast(checks.describe(bad))
    if forecasts.sample_weights is not None and checks.num_samples is not None:
        problem = sample_weights_problem(np.asarray(forecasts.sample_weights, dtype=np.float64), checks.num_samples)
        if problem:
            raise InvalidForecast(f"invalid input: {problem.words}")


def cholesky_2x2(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of (..., 2, 2) covariances; slightly indefinite ones are clamped to PSD."""
    a = np.maximum(cov[..., 0, 0], 0.0)
    b = 0.5 * (cov[..., 0, 1] + cov[..., 1, 0])
    c = np.maximum(cov[..., 1, 1], 0.0)
    l11 = np.sqrt(a)
    l21 = np.divide(b, l11, out=np.zeros_like(b), where=l11 > 0.0)
    l22 = np.sqrt(np.maximum(c - l21**2, 0.0))
    out = np.zeros(cov.shape)
    out[..., 0, 0] = l11
    out[..., 1, 0] = l21
    out[..., 1, 1] = l22
    return out


def cholesky_factors(cov: np.ndarray) -> np.ndarray:
    """(..., 3) = (l11, l21, l22) of ``cholesky_2x2``: the three entries a sample's spread needs."""
    chol = cholesky_2x2(cov)
    return np.stack([chol[..., 0, 0], chol[..., 1, 0], chol[..., 1, 1]], axis=-1)


def systematic_modes(weights: np.ndarray, num_scenarios: int, rng: np.random.Generator) -> np.ndarray:
    """(N, S) mode indices for (N, K) weights: stratified counts, independent order per agent."""
    cumulative = np.cumsum(weights, axis=1)
    cumulative = cumulative / cumulative[:, -1:]
    u = (rng.random((len(weights), 1)) + np.arange(num_scenarios)[None, :]) / num_scenarios
    modes = np.sum(u[:, :, None] >= cumulative[:, None, :], axis=2)
    modes = np.minimum(modes, weights.shape[1] - 1)
    return rng.permuted(modes, axis=1)


def _gaussian_samples(
    agents: list[AgentForecast], num_scenarios: int, rng: np.random.Generator, grid: tuple[float, float],
    times_s: np.ndarray,
) -> np.ndarray:
    """(S, N, T', 2) draws of the agents' Gaussian mixtures at ``times_s``.

    A sample is mean + L z with one z per trajectory, so it is linear in (mean, L): interpolating
    the few mode means and Cholesky factors in time equals interpolating every sample, for less work.
    """
    num_modes = max(len(a.weights) for a in agents)
    steps = np.asarray(agents[0].means_m).shape[1]
    weights = np.zeros((len(agents), num_modes))
    means = np.zeros((len(agents), num_modes, steps, 2))
    covs = np.zeros((len(agents), num_modes, steps, 2, 2))
    for n, agent in enumerate(agents):
        k = len(agent.weights)
        weights[n, :k] = agent.weights
        means[n, :k] = agent.means_m
        covs[n, :k] = agent.covariances_m2
    factors = cholesky_factors(covs)  # (N, K, T, 3)
    means = resample_in_time(means, grid[0], grid[1], times_s)
    factors = resample_in_time(factors, grid[0], grid[1], times_s, extrapolate=False)
    modes = systematic_modes(weights, num_scenarios, rng)  # (N, S)
    z = rng.standard_normal((len(agents), num_scenarios, 1, 2)).transpose(1, 0, 2, 3)  # (S, N, 1, 2)
    flat = (np.arange(len(agents))[None, :] * num_modes + modes.T).reshape(-1)  # scenario-major rows
    shape = (num_scenarios, len(agents), len(times_s))
    mean = np.take(means.reshape(-1, *means.shape[2:]), flat, axis=0).reshape(*shape, 2)
    fac = np.take(factors.reshape(-1, *factors.shape[2:]), flat, axis=0).reshape(*shape, 3)
    samples = np.empty_like(mean)
    samples[..., 0] = mean[..., 0] + fac[..., 0] * z[..., 0]
    samples[..., 1] = mean[..., 1] + fac[..., 1] * z[..., 0] + fac[..., 2] * z[..., 1]
    return np.asarray(samples)


def resample_in_time(
    values: np.ndarray, grid_start_s: float, grid_dt_s: float, times_s: np.ndarray, extrapolate: bool = True
) -> np.ndarray:
    """Linear interpolation of (..., T, D) values on a uniform time grid to ``times_s`` (..., T', D).

    Outside the grid positions are extended linearly from the two nearest steps (constant velocity
    rather than a car that freezes at the forecast's end); with ``extrapolate=False`` (spreads) the
    end values are held.
    """
    steps = values.shape[-2]
    if steps == 1:
        return np.repeat(values, len(times_s), axis=-2)
    pos = (np.asarray(times_s, dtype=np.float64) - grid_start_s) / grid_dt_s
    index = np.clip(np.floor(pos).astype(np.int64), 0, steps - 2)
    frac = pos - index
    if not extrapolate:
        frac = np.clip(frac, 0.0, 1.0)
    lower = np.take(values, index, axis=-2)
    upper = np.take(values, index + 1, axis=-2)
    return np.asarray(lower + frac[:, None] * (upper - lower))


def sample_scenarios(
    forecasts: ForecastSet,
    num_scenarios: int,
    seed: int | np.random.Generator = 0,
    times_s: np.ndarray | None = None,
    validate: bool = True,
) -> Scenarios:
    """Draw S joint scenarios, optionally resampled onto absolute ``times_s``.

    With no agents a single scenario of weight 1 is returned (the costs cannot differ between
    scenarios). When the forecasts carry samples, S is theirs and ``num_scenarios`` is ignored.
    ``validate=False`` skips the input checks for a caller that has just run ``validate_forecasts``.
    """
    if validate:
        validate_forecasts(forecasts)
    if num_scenarios < 1:
        raise ValueError("num_scenarios must be at least 1")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    grid = forecasts.stamp_s + forecasts.dt_s * np.arange(1, forecasts.num_steps + 1)
    times = grid if times_s is None else np.asarray(times_s, dtype=np.float64)
    agents = forecasts.agents
    if not agents:
        return Scenarios(np.zeros((1, 0, len(times), 2)), np.ones(1), times, np.zeros(0, np.int64),
                         np.zeros(0), np.zeros(0))
    grid_spec = (float(grid[0]), forecasts.dt_s)
    if any(a.samples_m is not None for a in agents):
        positions, weights = _given_samples(forecasts, rng, grid_spec, times)
    else:
        positions = _gaussian_samples(agents, num_scenarios, rng, grid_spec, times)
        weights = np.full(num_scenarios, 1.0 / num_scenarios)
    return Scenarios(
        positions_m=positions,
        weights=weights,
        times_s=times,
        agent_ids=np.array([a.agent_id for a in agents], dtype=np.int64),
        lengths_m=np.array([a.length_m for a in agents], dtype=np.float64),
        widths_m=np.array([a.width_m for a in agents], dtype=np.float64),
    )


def _given_samples(
    forecasts: ForecastSet, rng: np.random.Generator, grid: tuple[float, float], times_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The forecast's own joint samples; agents without samples get Gaussian draws of the same S."""
    agents = forecasts.agents
    num = next(np.asarray(a.samples_m).shape[0] for a in agents if a.samples_m is not None)
    missing = [a for a in agents if a.samples_m is None]
    drawn = iter(_gaussian_samples(missing, num, rng, grid, times_s).transpose(1, 0, 2, 3)) if missing else iter(())
    per_agent = [
        resample_in_time(np.asarray(a.samples_m, dtype=np.float64), grid[0], grid[1], times_s)
        if a.samples_m is not None
        else next(drawn)
        for a in agents
    ]
    positions = np.stack(per_agent, axis=1)
    w = forecasts.sample_weights
    weights = np.full(num, 1.0 / num) if w is None else np.asarray(w, dtype=np.float64) / np.sum(w)
    return positions, weights
