"""Plain value types shared by the predictor, the planner and the ROS shell.

Frames follow REP 103/105: x forward/east, y left/north, yaw counter-clockwise from +x,
all positions in one planar world frame ("map"). Times are seconds (float) in one clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


@dataclass(frozen=True)
class TrackedAgent:
    """One tracked road user at one instant (footprint centre, world frame)."""

    agent_id: int
    stamp_s: float
    x_m: float
    y_m: float
    yaw_rad: float
    vx_mps: float
    vy_mps: float
    length_m: float = 4.5
    width_m: float = 1.8
    ax_mps2: float = 0.0
    ay_mps2: float = 0.0
    classification: int = 1


@dataclass(frozen=True)
class EgoState:
    """Ego vehicle state (rear-axle-free point model: footprint centre)."""

    stamp_s: float
    x_m: float
    y_m: float
    yaw_rad: float
    v_mps: float
    a_mps2: float = 0.0
    length_m: float = 4.5
    width_m: float = 1.8


@dataclass
class AgentForecast:
    """Gaussian-mixture forecast of one agent.

    Step t (0-based) is at time ``stamp_s + (t + 1) * dt_s``.
    """

    agent_id: int
    weights: np.ndarray  # (K,) mode probabilities, sum to 1
    means_m: np.ndarray  # (K, T, 2) mode means (x, y)
    covariances_m2: np.ndarray  # (K, T, 2, 2) position covariances
    length_m: float = 4.5
    width_m: float = 1.8
    samples_m: np.ndarray | None = None  # (S, T, 2) optional joint samples (same S for all agents)


@dataclass
class ForecastSet:
    """All agents' forecasts from one prediction cycle."""

    stamp_s: float
    dt_s: float
    num_steps: int
    agents: list[AgentForecast] = field(default_factory=list)
    sample_weights: np.ndarray | None = None  # (S,) importance weights of the joint samples
    sample_risk_level: float = 0.0  # risk level the samples were biased for (0 = unbiased)


class PlanStatus(Enum):
    """The planner's choice or its braking fallback; names and values are RiskAwarePlan's STATUS_* constants."""

    OK = 0
    FALLBACK = 1


class FallbackReason(Enum):
    """Why a plan is the braking fallback, for code to act on (``Plan.reason`` has the details for people).

    Names and values are RiskAwarePlan's FALLBACK_* constants, so bags decode without ROS.
    """

    UNSPECIFIED = 0  # a fallback received without a known code (an older or newer sender)
    MISSING_EGO = 1
    NON_FINITE_INPUT = 2  # in the ego state or the planning time
    INVALID_EGO_FOOTPRINT = 3
    MISSING_PREDICTIONS = 4
    STALE_PREDICTIONS = 5
    FUTURE_PREDICTIONS = 6  # stamped further ahead than the prediction timeout
    INVALID_FORECAST = 7
    STALE_ODOMETRY = 8
    OFF_ROAD = 9  # ego far beside the reference path: wrong frame or reference
    NO_ACCEPTABLE_CANDIDATE = 10
    PLANNER_FAILURE = 11


class PlanNote(Enum):
    """Why an ok plan's CVaR refinement was not applied (RiskAwarePlan's NOTE_*)."""

    REFINEMENT_SKIPPED_BUDGET = 1
    REFINEMENT_SOLVER_FAILURE = 2
    REFINEMENT_INFEASIBLE = 3


class SafetyAction(Enum):
    """What the safety layer (core.safety) did when the lowest-risk candidate broke its check (RiskAwarePlan's
    SAFETY_*)."""

    SAFE_ALTERNATIVE = 1  # the lowest-risk candidate that passes
    IN_LANE_STOP = 2  # none passed: hard braking to the nearest lane centre


@dataclass
class Plan:
    """A timed ego trajectory with its risk figures.

    ``states`` columns are x_m, y_m, yaw_rad, v_mps, a_mps2; row t is at ``stamp_s + times_s[t]``.
    ``fallback`` (None: ok) is the one source of ``ok`` and ``status``; ``reason`` is its human-readable
    detail, or that of ``note`` on an ok plan.
    """

    stamp_s: float
    times_s: np.ndarray  # (T,)
    states: np.ndarray  # (T, 5)
    risk_measure: str = "cvar"
    risk_level: float = 0.0
    risk: float = float("nan")
    expected_cost: float = float("nan")
    value_at_risk: float = float("nan")
    fallback: FallbackReason | None = None
    note: PlanNote | None = None
    safety: SafetyAction | None = None  # None: the ranking's choice stood
    reason: str = ""
    planning_time_s: float = 0.0
    num_candidates: int = 0
    num_scenarios: int = 0
    num_agents: int = 0  # agents the plan was checked against (those within reach of some candidate)
    prediction_stamp_s: float = float("nan")  # stamp of the forecasts it was made on (NaN: none, e.g. fallback)
    candidates_xy_m: np.ndarray | None = None  # (C', T, 2) a few candidates for visualisation
    candidates_risk: np.ndarray | None = None  # (C',) their risks

    @property
    def ok(self) -> bool:
        return self.fallback is None

    @property
    def status(self) -> PlanStatus:
        return PlanStatus.OK if self.fallback is None else PlanStatus.FALLBACK
