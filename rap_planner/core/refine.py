"""CVaR refinement of one candidate's acceleration profile (Rockafellar-Uryasev, cvxpy, DPP).

Around the chosen candidate, each scenario's interaction cost is linearised in the acceleration
deltas, L_s(delta) = l_s + g_s . delta, and the scenario-independent longitudinal cost (speed
tracking, accel, jerk) is kept exactly as ||q + R delta||^2. CVaR of the sum is then the QP

    min_{delta, t, u >= 0}  t + sum_s p_s u_s + ||q + R delta||^2 + reg ||delta||^2
    s.t.  u_s >= l_s + g_s . delta - t,  accel / jerk / trust-region bounds,  speed >= 0,

with p_s = w_s / (1 - alpha). The problem is built once per (T, S, weights) with cp.Parameter only
(DPP), so each cycle only refills parameters (and warm-starts OSQP; Clarabel, the default, is an
interior-point method that needs ~15 iterations from scratch on this problem, where OSQP's ADMM
needs hundreds). The linear model is only trusted locally: the caller re-evaluates the true cost
and keeps the result only if it lowers the risk.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from rap_planner.core.candidates import VehicleLimits

_OK_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


@dataclass(frozen=True)
class RefineInputs:
    """One cycle's data: base profile (T,), per-scenario linearisation (S,), (S, T) and weights."""

    accel_mps2: np.ndarray  # (T,) base accelerations a_0..a_T-1
    speed_mps: np.ndarray  # (T,) base speeds v_1..v_T
    prev_accel_mps2: float  # a_-1, for the first jerk
    loss: np.ndarray  # (S,) scenario-dependent cost at the base profile
    grad: np.ndarray  # (S, T) its gradient w.r.t. the accelerations
    weights: np.ndarray  # (S,) scenario probabilities
    tail_scale: float  # 1 / (1 - alpha); for the worst case 1 / min weight
    target_speed_mps: float


@dataclass(frozen=True)
class QuadraticWeights:
    """Weights of the scenario-independent longitudinal cost (as in ``CostModel.longitudinal_cost``)."""

    progress: float
    comfort: float
    jerk_ratio: float


@dataclass(frozen=True)
class RefineResult:
    """A solved refinement (the caller still has to check it against the true cost)."""

    accel_mps2: np.ndarray  # (T,) refined accelerations
    objective: float  # the QP's optimum (predicted CVaR + longitudinal cost)
    solve_time_s: float
    status: str


@functools.lru_cache(maxsize=8)
def speed_jacobian(num_steps: int, dt_s: float) -> np.ndarray:
    """d v_j / d a_k for j = 1..T, k = 0..T-1 (piecewise-constant accelerations); read-only, cached."""
    jac = dt_s * np.tril(np.ones((num_steps, num_steps)))
    jac.flags.writeable = False
    return jac


@functools.lru_cache(maxsize=8)
def position_jacobian(num_steps: int, dt_s: float) -> np.ndarray:
    """d s_j / d a_k = dt^2 (j - k - 1/2) for k < j; read-only, cached."""
    j = np.arange(1, num_steps + 1)[:, None]
    k = np.arange(num_steps)[None, :]
    jac = np.where(k < j, dt_s**2 * (j - k - 0.5), 0.0)
    jac.flags.writeable = False
    return jac


def _difference_matrix(num_steps: int) -> np.ndarray:
    """(D x)_k = x_k - x_k-1 with x_-1 = 0."""
    return np.eye(num_steps) - np.eye(num_steps, k=-1)


class CvarRefiner:
    """The CVaR QP for T steps and S scenarios, built once and re-solved with new parameters.

    The longitudinal cost is ||q + R delta||^2 with R fixed by dt and the weights, so its Hessian
    R'R is a constant of the problem and only q moves (through the linear term 2 R'q): a new
    refiner is needed when the weights change, not each cycle.
    """

    def __init__(self, num_steps: int, num_scenarios: int, dt_s: float, weights: QuadraticWeights,
                 solver: str = "CLARABEL", regularisation: float = 1e-3) -> None:
        self.num_steps, self.num_scenarios, self.dt_s = num_steps, num_scenarios, dt_s
        self.weights, self.solver = weights, solver
        steps, scen = num_steps, num_scenarios
        self._speed_jac = speed_jacobian(steps, dt_s)
        self._diff = _difference_matrix(steps)
        self._residual_jac = np.vstack([
            math.sqrt(weights.progress * dt_s) * self._speed_jac,
            math.sqrt(weights.comfort * dt_s) * np.eye(steps),
            math.sqrt(weights.comfort * weights.jerk_ratio * dt_s) / dt_s * self._diff,
        ])
        hessian = self._residual_jac.T @ self._residual_jac + regularisation * np.eye(steps)
        self.delta = cp.Variable(steps, name="accel_delta")
        t = cp.Variable(name="value_at_risk")
        excess = cp.Variable(scen, nonneg=True, name="excess")
        p = {
            "loss": cp.Parameter(scen, name="loss"),
            "grad": cp.Parameter((scen, steps), name="grad"),
            "tail": cp.Parameter(scen, nonneg=True, name="tail_weights"),
            "linear": cp.Parameter(steps, name="linear_term"),
            "lo": cp.Parameter(steps, name="delta_lo"),
            "hi": cp.Parameter(steps, name="delta_hi"),
            "jerk": cp.Parameter(steps, name="base_accel_steps"),
            "jerk_max": cp.Parameter(steps, nonneg=True, name="accel_step_max"),
            "speed": cp.Parameter(steps, name="base_speed"),
        }
        self._params = p
        accel_steps = p["jerk"] + self._diff @ self.delta
        constraints = [
            excess >= p["loss"] + p["grad"] @ self.delta - t,
            self.delta >= p["lo"],
            self.delta <= p["hi"],
            accel_steps <= p["jerk_max"],
            accel_steps >= -p["jerk_max"],
            p["speed"] + self._speed_jac @ self.delta >= 0.0,
        ]
        quadratic = cp.quad_form(self.delta, cp.psd_wrap(hessian)) + p["linear"] @ self.delta
        self.problem = cp.Problem(cp.Minimize(t + p["tail"] @ excess + quadratic), constraints)
        self._offset = 0.0

    def is_dpp(self) -> bool:
        return self.problem.is_dpp()

    def _fill(self, data: RefineInputs, limits: VehicleLimits, trust_region_mps2: float) -> None:
        p, dt, w = self._params, self.dt_s, self.weights
        a = np.asarray(data.accel_mps2, dtype=np.float64)
        steps_base = np.diff(a, prepend=data.prev_accel_mps2)
        residual = np.concatenate([
            math.sqrt(w.progress * dt) * (np.asarray(data.speed_mps) - data.target_speed_mps),
            math.sqrt(w.comfort * dt) * a,
            math.sqrt(w.comfort * w.jerk_ratio * dt) / dt * steps_base,
        ])
        loss = np.asarray(data.loss, dtype=np.float64)
        centre = float(loss @ data.weights)  # CVaR is translation equivariant: keep t and u small
        p["loss"].value = loss - centre
        p["grad"].value = np.asarray(data.grad, dtype=np.float64)
        p["tail"].value = np.asarray(data.weights, dtype=np.float64) * data.tail_scale
        p["linear"].value = 2.0 * self._residual_jac.T @ residual
        p["lo"].value = np.minimum(np.maximum(-limits.max_decel_mps2 - a, -trust_region_mps2), 0.0)
        p["hi"].value = np.maximum(np.minimum(limits.max_accel_mps2 - a, trust_region_mps2), 0.0)
        p["jerk"].value = steps_base
        # A base profile that already breaks the jerk limit (a stop) stays feasible: never tighter than it is.
        p["jerk_max"].value = np.maximum(limits.max_jerk_mps3 * dt, np.abs(steps_base))
        p["speed"].value = np.asarray(data.speed_mps, dtype=np.float64)
        self._offset = centre + float(residual @ residual)

    def refine(self, data: RefineInputs, limits: VehicleLimits, trust_region_mps2: float = 1.0,
               time_limit_s: float = 0.02) -> RefineResult | None:
        """The refined profile, or None when the solver fails or runs out of time."""
        if np.shape(data.grad) != (self.num_scenarios, self.num_steps):
            raise ValueError(f"grad must be ({self.num_scenarios}, {self.num_steps}), got {np.shape(data.grad)}")
        self._fill(data, limits, trust_region_mps2)
        start = time.perf_counter()
        try:
            self.problem.solve(**self._solver_options(time_limit_s))
        except cp.error.SolverError:
            return None
        elapsed = time.perf_counter() - start
        if self.problem.status not in _OK_STATUSES or self.delta.value is None:
            return None
        accel = np.asarray(data.accel_mps2, dtype=np.float64) + self.delta.value
        accel = np.clip(accel, -limits.max_decel_mps2, limits.max_accel_mps2)  # solver tolerance, not a change
        return RefineResult(accel, float(self.problem.value) + self._offset, elapsed, self.problem.status)

    def _solver_options(self, time_limit_s: float) -> dict[str, Any]:
        if self.solver == "CLARABEL":
            return {"solver": cp.CLARABEL, "time_limit": time_limit_s, "tol_gap_abs": 1e-5, "tol_gap_rel": 1e-5,
                    "tol_feas": 1e-5}
        if self.solver == "OSQP":
            return {"solver": cp.OSQP, "warm_start": True, "time_limit": time_limit_s, "eps_abs": 1e-3,
                    "eps_rel": 1e-3, "polishing": True, "max_iter": 4000}
        raise ValueError(f"unknown solver {self.solver!r}; use CLARABEL or OSQP")
