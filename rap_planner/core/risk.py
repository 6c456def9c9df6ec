"""Risk measures of a sampled cost distribution, one small class per estimator (as in RAP).

Every estimator has one call, ``risk(costs, weights, risk_level)``: ``costs`` is (C, S), one row of
S scenario costs per candidate, ``weights`` the (S,) scenario probabilities (None = uniform; they
are normalised, zero-weight samples are ignored) and ``risk_level`` alpha in [0, 1): 0 is
risk-neutral, towards 1 the worst case. The result is (C,), one risk per candidate. A 1-D ``costs``
(one candidate) gives a 0-d array.
"""

from __future__ import annotations

import math

import numpy as np

from rap_planner.core.array_types import FloatArray

_QUANTILE_TOL = 1e-12  # cumulative weights this close below alpha count as reaching it (float sums)
_TINY_TEMPERATURE = 1e-12  # below this inverse temperature the entropic risk is the mean


def validate_risk_level(risk_level: float) -> float:
    """alpha as a float, or ValueError saying why it is unusable."""
    try:
        alpha = float(risk_level)
    except (TypeError, ValueError):
        raise ValueError(f"risk_level must be a number in [0, 1), got {risk_level!r}") from None
    if not math.isfinite(alpha) or not 0.0 <= alpha < 1.0:
        raise ValueError(f"risk_level must be in [0, 1), got {risk_level!r}")
    return alpha


def normalised_weights(weights: np.ndarray | None, num_samples: int) -> FloatArray:
    """Scenario probabilities summing to one (uniform when None); ValueError when unusable."""
    if num_samples < 1:
        raise ValueError("at least one scenario is needed")
    if weights is None:
        return np.full(num_samples, 1.0 / num_samples)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (num_samples,):
        raise ValueError(f"weights must have shape ({num_samples},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0.0):
        raise ValueError("weights must be finite and non-negative")
    total = float(w.sum())
    if total <= 0.0:
        raise ValueError("weights must not all be zero")
    return w / total


def _prepare(costs: np.ndarray, weights: np.ndarray | None) -> tuple[FloatArray, FloatArray]:
    """(C, S') costs and (S',) probabilities with zero-weight samples dropped."""
    c = np.asarray(costs, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"costs must be (C, S) or (S,), got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("costs must be finite")
    w = normalised_weights(weights, c.shape[1])
    keep = w > 0.0
    if not keep.all():
        c, w = c[:, keep], w[keep]
    return c, w


def _lower_quantile(costs: FloatArray, weights: FloatArray, alpha: float) -> FloatArray:
    """Per row, the smallest cost whose cumulative probability reaches alpha (VaR_alpha)."""
    num = costs.shape[1]
    if np.all(weights == weights[0]):  # equal weights: the quantile's rank is known, a partition suffices
        rank = min(max(math.ceil(num * (alpha - _QUANTILE_TOL)) - 1, 0), num - 1)
        return np.partition(costs, rank, axis=1)[:, rank]
    order = np.argsort(costs, axis=1, kind="stable")
    sorted_costs = np.take_along_axis(costs, order, axis=1)
    cumulative = np.cumsum(weights[order], axis=1)
    index = np.sum(cumulative < alpha - _QUANTILE_TOL, axis=1)
    index = np.minimum(index, costs.shape[1] - 1)
    return np.take_along_axis(sorted_costs, index[:, None], axis=1)[:, 0]


class RiskMeasure:
    """Base class: validation and shapes here, the maths in ``_risk``."""

    name = "base"

    def risk(self, costs: np.ndarray, weights: np.ndarray | None = None, risk_level: float = 0.0) -> FloatArray:
        """Risk of each candidate's cost distribution: (C, S) -> (C,), or (S,) -> ()."""
        alpha = validate_risk_level(risk_level)
        one_candidate = np.ndim(costs) == 1
        c, w = _prepare(np.atleast_2d(costs), weights)
        result = self._risk(c, w, alpha)
        return result[0] if one_candidate else result

    def _risk(self, costs: FloatArray, weights: FloatArray, alpha: float) -> FloatArray:
        raise NotImplementedError


class Expectation(RiskMeasure):
    """Risk-neutral: the weighted mean (alpha is ignored)."""

    name = "mean"

    def _risk(self, costs: FloatArray, weights: FloatArray, alpha: float) -> FloatArray:
        return costs @ weights


class ValueAtRisk(RiskMeasure):
    """VaR_alpha: the lower alpha-quantile, the cost not exceeded with probability alpha."""

    name = "var"

    def _risk(self, costs: FloatArray, weights: FloatArray, alpha: float) -> FloatArray:
        return _lower_quantile(costs, weights, alpha)


class CVaR(RiskMeasure):
    """CVaR_alpha: mean of the worst (1 - alpha) probability mass.

    Exact on the discrete distribution through Rockafellar-Uryasev,
    CVaR = min_t t + E[(L - t)+] / (1 - alpha), whose minimiser is VaR_alpha; this splits an atom
    that straddles the tail boundary correctly (a fractional atom), unlike averaging the worst
    ceil((1 - alpha) S) samples.
    """

    name = "cvar"

    def _risk(self, costs: FloatArray, weights: FloatArray, alpha: float) -> FloatArray:
        t = _lower_quantile(costs, weights, alpha)
        tail = np.maximum(costs - t[:, None], 0.0) @ weights
        cvar = t + tail / (1.0 - alpha)
        # The exact value lies in [mean, max]; clipping only removes float rounding near alpha -> 1.
        return np.clip(cvar, costs @ weights, costs.max(axis=1))


class EntropicRisk(RiskMeasure):
    """Entropic risk (1/theta) log E[exp(theta L)] with theta = alpha / ((1 - alpha) cost_scale).

    alpha = 0 gives the mean, alpha -> 1 the worst case; ``cost_scale`` is the cost difference that
    one unit of theta weighs (costs are not unitless, so the temperature needs a scale).
    """

    name = "entropic"

    def __init__(self, cost_scale: float = 1.0) -> None:
        if not math.isfinite(cost_scale) or cost_scale <= 0.0:
            raise ValueError(f"cost_scale must be positive, got {cost_scale!r}")
        self.cost_scale = float(cost_scale)

    def _risk(self, costs: FloatArray, weights: FloatArray, alpha: float) -> FloatArray:
        mean = costs @ weights
        theta = alpha / ((1.0 - alpha) * self.cost_scale)
        if theta < _TINY_TEMPERATURE:
            return mean
        top: FloatArray = costs.max(axis=1)
        # log E[exp(theta (L - max))] via log1p/expm1 keeps precision for small theta.
        log_mgf = np.log1p(np.expm1(theta * (costs - top[:, None])) @ weights)
        return np.clip(top + log_mgf / theta, mean, top)


class WorstCase(RiskMeasure):
    """The largest cost among samples with positive weight (alpha is ignored)."""

    name = "worst"

    def _risk(self, costs: FloatArray, weights: FloatArray, alpha: float) -> FloatArray:
        worst: FloatArray = costs.max(axis=1)
        return worst


RISK_MEASURES: dict[str, type[RiskMeasure]] = {
    "mean": Expectation,
    "var": ValueAtRisk,
    "cvar": CVaR,
    "entropic": EntropicRisk,
    "worst": WorstCase,
}


def make_risk_measure(name: str) -> RiskMeasure:
    """The estimator registered under ``name``; ValueError listing the known names otherwise."""
    try:
        return RISK_MEASURES[name]()
    except KeyError:
        raise ValueError(f"unknown risk measure {name!r}; choose one of {sorted(RISK_MEASURES)}") from None
