"""Which agents can matter to any candidate: the planner leaves the rest out before sampling scenarios.

Scenario sampling, the Frenet projection and the cost kernel all grow with the number of agents, but in
a 200-agent scene most agents are too far ahead, behind or across the road to cost anything. A Gaussian
scenario is ``mean(t) + L(t) z`` with one standard-normal z per trajectory (see ``scenarios``), so while
``|z| <= RELEVANCE_SIGMAS`` the sample stays within ``RELEVANCE_SIGMAS * sigma_max(t)`` of its mode's mean
and its velocity within ``RELEVANCE_SIGMAS * ||dL/dt||_F`` of the mean's. An agent is kept when, for some
drawable mode (or given sample) and step, that widened box is within reach of the candidates' envelope
(``CostModel.within_reach``, the test that already prunes scenario columns). With 5 sigmas a dropped
agent would have been drawn inside its bound in all but P(|z| > 5) = exp(-12.5) ~ 4e-6 of the scenarios.
"""

from __future__ import annotations

import numpy as np

from rap_planner.core.array_types import FloatArray
from rap_planner.core.candidates import Candidates
from rap_planner.core.costs import CostModel
from rap_planner.core.scenarios import cholesky_factors, resample_in_time
from rap_planner.core.types import AgentForecast, ForecastSet

RELEVANCE_SIGMAS = 5.0


def _scenario_sources(agents: list[AgentForecast]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owner (R,), positions (R, T, 2) and covariances (R, T, 2, 2) scenarios are drawn around.

    Given samples are taken as they are (no spread); otherwise the means of the modes that can be drawn
    (a zero-weight mode never is). Agents are stacked in groups of equal shape: no per-agent numpy work.
    """
    groups: dict[tuple[bool, tuple[int, ...]], list[int]] = {}
    sources = [a.samples_m if a.samples_m is not None else a.means_m for a in agents]
    for n, (a, source) in enumerate(zip(agents, sources, strict=True)):
        groups.setdefault((a.samples_m is not None, np.shape(source)), []).append(n)
    owners, positions, covariances = [], [], []
    for (given, _), members in groups.items():
        pos = np.stack([sources[n] for n in members]).astype(np.float64)
        if given:
            drawable = np.ones(pos.shape[:2], bool)
            cov = np.zeros(pos.shape + (2,))
        else:
            drawable = np.stack([agents[n].weights for n in members]) > 0.0
            cov = np.stack([agents[n].covariances_m2 for n in members]).astype(np.float64)
        owners.append(np.broadcast_to(np.asarray(members)[:, None], drawable.shape)[drawable])
        positions.append(pos[drawable])
        covariances.append(cov[drawable])
    return np.concatenate(owners), np.concatenate(positions), np.concatenate(covariances)


def _largest_sigma(factors: FloatArray) -> FloatArray:
    """sqrt of the largest eigenvalue of L L^T for (..., 3) factors (l11, l21, l22)."""
    l11, l21, l22 = factors[..., 0], factors[..., 1], factors[..., 2]
    a, b, c = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    return np.sqrt(0.5 * (a + c) + np.sqrt((0.5 * (a - c)) ** 2 + b * b))


def _time_rate(values: np.ndarray, times_s: np.ndarray) -> FloatArray:
    """d/dt of (R, T, ...) values along axis 1 (zero for a single step)."""
    if len(times_s) < 2:
        return np.zeros_like(values)
    rate: FloatArray = np.gradient(values, float(times_s[1] - times_s[0]), axis=1)
    return rate


def relevant_agents(forecasts: ForecastSet, cands: Candidates, model: CostModel, times_s: np.ndarray,
                    sigmas: float = RELEVANCE_SIGMAS) -> np.ndarray:
    """(N,) mask of the agents whose scenarios on ``times_s`` (the candidates' future steps) can cost anything."""
    agents = forecasts.agents
    if not agents:
        return np.zeros(0, bool)
    owner, positions, covariances = _scenario_sources(agents)
    grid_start_s, grid_dt_s = forecasts.stamp_s + forecasts.dt_s, forecasts.dt_s
    means = resample_in_time(positions, grid_start_s, grid_dt_s, times_s)
    factors = resample_in_time(cholesky_factors(covariances), grid_start_s, grid_dt_s, times_s, extrapolate=False)
    position_slack = sigmas * _largest_sigma(factors)  # (R, T)
    speed_slack = sigmas * np.linalg.norm(_time_rate(factors, times_s), axis=-1)
    sizes = np.array([(a.length_m, a.width_m) for a in agents])
    half_extent = 0.5 * np.hypot(sizes[:, 0], sizes[:, 1])[owner, None]  # bounds both Frenet box half extents
    s, d = model.reference.trajectories_to_frenet(means[..., 0], means[..., 1])
    step = np.broadcast_to(np.arange(len(times_s)), s.shape)
    reach = model.within_reach(cands, step, s, d, _time_rate(s, times_s), half_extent, half_extent,
                               position_slack_m=position_slack, speed_slack_mps=speed_slack)
    return np.bincount(owner, weights=reach.any(axis=1), minlength=len(agents)) > 0
