"""The risk-aware planner: candidates x scenarios -> costs -> risk -> best -> CVaR refinement -> Plan.

Like a nuPlan planner it knows nothing of ROS: ``plan(ego, forecasts, reference, now_s)`` is a
function of its inputs, its config and the lane change it has committed to (scenario draws are seeded
per call, so equal inputs to a fresh planner give equal plans). It never raises on bad inputs: stale,
missing, non-finite or malformed inputs give a braking plan in the current lane with ``ok=False`` and
the reason.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rap_planner.core.candidates import (
    CandidateConfig,
    Candidates,
    LaneCommitment,
    VehicleLimits,
    compose,
    ego_frenet,
    integrate_accel,
    plan_candidates,
)
from rap_planner.core.costs import AgentTracks, CostModel, CostWeights, agent_tracks
from rap_planner.core.parameters import PLANNER
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.refine import (
    CvarRefiner,
    QuadraticWeights,
    RefineInputs,
    position_jacobian,
    speed_jacobian,
)
from rap_planner.core.relevance import relevant_agents
from rap_planner.core.risk import RISK_MEASURES, RiskMeasure, ValueAtRisk, make_risk_measure, validate_risk_level
from rap_planner.core.safety import RssCheck, RssParams, braking_accel, in_lane_stop, leader_tracks, safe_choice
from rap_planner.core.scenarios import InvalidForecast, sample_scenarios, validate_forecasts
from rap_planner.core.types import EgoState, FallbackReason, ForecastSet, Plan, PlanNote, SafetyAction

log = logging.getLogger(__name__)

_EGO_FIELDS = ("stamp_s", "x_m", "y_m", "yaw_rad", "v_mps", "a_mps2", "length_m", "width_m")
NOTE_REASONS = {  # the human-readable detail of each note
    PlanNote.REFINEMENT_SKIPPED_BUDGET: "refinement skipped: cycle budget",
    PlanNote.REFINEMENT_SOLVER_FAILURE: "refinement skipped: solver failure",
    PlanNote.REFINEMENT_INFEASIBLE: "refinement rejected: infeasible",
}
SAFETY_REASONS = {
    SafetyAction.SAFE_ALTERNATIVE: "safety override: the lowest-risk candidate breaks the RSS gap; the best safe one "
                                   "taken",
    SafetyAction.IN_LANE_STOP: "safety override: no candidate keeps the RSS gap; controlled in-lane stop",
}
MAX_OFF_ROAD_M = 10.0  # an ego further than this beyond the drivable area is not driving on the reference
_REFINE_MIN_GAIN = 1e-9  # a refinement must lower the risk by more than this to be kept
_MAX_CACHED_REFINERS = 8
_REFINE_DURATIONS_KEPT = 8  # the budget check expects the slowest of the last few refinements (each skip drops one)
_LANE_CHANGE_DONE_M = 0.3  # a lane change is finished (the commitment released) this close to its lane centre
_SETTLED_MPS = 0.3  # ... and moving sideways slower than this (not passing through it)
_ARRIVED_M = 0.05  # a lateral profile has arrived when it is this close to where it ends


@dataclass(frozen=True)
class PlannerConfig:
    """Everything the planner can be told; ``validate()`` says what is wrong with a bad one."""

    risk_measure: str = PLANNER.config_default("risk_measure", str)
    risk_level: float = PLANNER.config_default("risk_level", float)
    num_scenarios: int = PLANNER.config_default("num_scenarios", int)
    horizon_s: float = PLANNER.config_default("horizon_s", float)
    dt_s: float = 0.2
    target_speed_mps: float | None = PLANNER.optional_config_default("target_speed_mps", float)  # None: speed limit
    num_target_speeds: int = 8
    accel_levels_mps2: tuple[float, ...] = (1.5, 4.0)
    resume_after_s: tuple[float, ...] = (2.5,)  # dip-and-resume variants of every speed profile
    lane_change_durations_s: tuple[float, ...] = (3.0, 5.0)
    lateral_nudges_m: tuple[float, ...] = (0.0,)  # off-centre nudges left the car between lanes
    max_lane_changes: int = 1
    limits: VehicleLimits = field(default_factory=VehicleLimits)
    weights: CostWeights = field(default_factory=CostWeights)
    prediction_timeout_s: float = PLANNER.config_default("prediction_timeout_s", float)
    seed: int = PLANNER.config_default("seed", int)
    refine: bool = PLANNER.config_default("refine", bool)
    refine_solver: str = "CLARABEL"
    refine_time_limit_s: float = PLANNER.config_default("refine_time_limit_s", float)
    refine_trust_region_mps2: float = 1.0
    cycle_budget_s: float = PLANNER.config_default("cycle_budget_s", float)  # skip refining when it would end later
    max_acceptable_risk: float = math.inf  # above this even the best candidate is refused (fallback)
    safety_check: bool = PLANNER.config_default("safety_check", bool)  # RSS check after ranking (core.safety)
    safety: RssParams = field(default_factory=RssParams)
    prune_agents: bool = True  # leave out agents no candidate can reach before sampling (see core.relevance)
    num_visualised: int = 16  # candidates returned in the Plan for visualisation

    def validate(self) -> None:
        """Raise ValueError naming the first unusable field."""
        if self.risk_measure not in RISK_MEASURES:
            raise ValueError(f"risk_measure must be one of {sorted(RISK_MEASURES)}, got {self.risk_measure!r}")
        validate_risk_level(self.risk_level)
        _positive("horizon_s", self.horizon_s)
        _positive("dt_s", self.dt_s)
        _positive("prediction_timeout_s", self.prediction_timeout_s)
        _positive("refine_time_limit_s", self.refine_time_limit_s)
        _positive("refine_trust_region_mps2", self.refine_trust_region_mps2)
        if not self.cycle_budget_s > 0.0:
            raise ValueError(f"cycle_budget_s must be positive (inf: no budget), got {self.cycle_budget_s!r}")
        steps = self.horizon_s / self.dt_s
        if abs(steps - round(steps)) > 1e-6 or round(steps) < 2:
            raise ValueError(f"horizon_s ({self.horizon_s}) must be a whole multiple (>= 2) of dt_s ({self.dt_s})")
        for name in ("num_scenarios", "num_target_speeds", "num_visualised"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_lane_changes < 0:
            raise ValueError("max_lane_changes must be >= 0")
        if self.target_speed_mps is not None and not (0.0 <= self.target_speed_mps < math.inf):
            raise ValueError(f"target_speed_mps must be finite and >= 0 (or None), got {self.target_speed_mps!r}")
        if not all(math.isfinite(v) and v >= 0.0 for v in self.resume_after_s):
            raise ValueError(f"resume_after_s must hold finite times >= 0, got {self.resume_after_s!r}")
        for name in ("accel_levels_mps2", "lane_change_durations_s"):
            values = getattr(self, name)
            if len(values) == 0 or not all(math.isfinite(v) and v > 0.0 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive numbers, got {values!r}")
        if len(self.lateral_nudges_m) == 0 or not all(math.isfinite(v) for v in self.lateral_nudges_m):
            raise ValueError("lateral_nudges_m must be a non-empty list of finite offsets")
        if self.refine_solver not in ("OSQP", "CLARABEL"):
            raise ValueError(f"refine_solver must be OSQP or CLARABEL, got {self.refine_solver!r}")
        if math.isnan(self.max_acceptable_risk):
            raise ValueError("max_acceptable_risk must not be NaN")
        self.limits.validate()
        self.weights.validate()
        self.safety.validate()

    @property
    def num_steps(self) -> int:
        return int(round(self.horizon_s / self.dt_s))

    def candidate_config(self, target_speed_mps: float = math.inf) -> CandidateConfig:
        """Candidate knobs; target speeds up to, and dips resuming to, ``target_speed_mps``."""
        return CandidateConfig(
            horizon_s=self.num_steps * self.dt_s,
            dt_s=self.dt_s,
            num_target_speeds=self.num_target_speeds,
            accel_levels_mps2=tuple(self.accel_levels_mps2),
            resume_after_s=tuple(self.resume_after_s),
            max_target_speed_mps=target_speed_mps,
            lane_change_durations_s=tuple(self.lane_change_durations_s),
            lateral_nudges_m=tuple(self.lateral_nudges_m),
            max_lane_changes=self.max_lane_changes,
            limits=self.limits,
        )


def candidates_and_cost(ego: EgoState, reference: ReferencePath, config: PlannerConfig,
                        commitment: LaneCommitment | None = None, d_accel0_mps2: float = 0.0
                        ) -> tuple[Candidates, CostModel]:
    """The candidate set and cost model the planner scores for this ego (the biased sampler trains on them).

    The target lane is the committed one during a lane change, else the nearest one; lateral moves start
    from ``d_accel0_mps2``.
    """
    target_speed = min(config.target_speed_mps if config.target_speed_mps is not None else math.inf,
                       reference.speed_limit_mps, config.limits.max_speed_mps)
    cands = plan_candidates(ego, reference, config.candidate_config(target_speed), commitment, d_accel0_mps2)
    _, d0, _ = ego_frenet(ego, reference)
    target_offset = commitment.target_offset_m if commitment is not None else reference.nearest_lane_offset(d0)
    model = CostModel(reference, config.weights, target_speed, target_offset, ego.length_m, ego.width_m)
    return cands, model


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass
class _Choice:
    """The plan being built: one trajectory and its per-scenario costs."""

    states: np.ndarray  # (T + 1, 5)
    costs: np.ndarray  # (S,)


CostEvaluator = Callable[[CostModel, Candidates, AgentTracks], np.ndarray]


def vectorised_costs(model: CostModel, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
    """(C, S) costs in one vectorised pass (the planner's default)."""
    return model.evaluate(cands, tracks, prune=False)


class RiskAwarePlanner:
    """Plans with ``config`` as it is at each ``plan()`` call (swap it or use ``update_config``).

    ``cost_evaluator`` computes the (C, S) cost matrix; benchmarks swap in the per-candidate loop.
    Entry points call ``rap_planner.runtime_tuning.tune_process()`` once (allocator, BLAS threads: ~1.5x faster).
    """

    def __init__(self, config: PlannerConfig | None = None, cost_evaluator: CostEvaluator = vectorised_costs) -> None:
        config = config or PlannerConfig()
        config.validate()
        self.cost_evaluator = cost_evaluator
        self.last_timings_s: dict[str, float] = {}
        self._refiners: dict[tuple[int, int, float, QuadraticWeights, str], CvarRefiner] = {}
        self._last_forecasts: ForecastSet | None = None
        self._last_ego: EgoState | None = None
        self._refine_durations_s: deque[float] = deque(maxlen=_REFINE_DURATIONS_KEPT)
        self._lane_target_m: float | None = None  # the lane centre of the lane change in progress
        self._lane_deadline_s = 0.0  # when that lane change should be finished
        self._lateral: tuple[float, np.ndarray, np.ndarray] | None = None  # last plan's (stamp, times, d-ddot)
        self._lateral_reference: ReferencePath | None = None  # the path the two above are on
        self._prepare(config)
        self.config = config

    def update_config(self, config: PlannerConfig | None = None, **changes: Any) -> PlannerConfig:
        """Validate and swap in a new config (a whole one and/or field changes); used from the next plan()."""
        new = dataclasses.replace(config or self.config, **changes)
        new.validate()
        self._prepare(new)
        self.config = new
        return new

    def _prepare(self, config: PlannerConfig) -> None:
        """Build the refinement QP for this config now (~0.1 s) rather than in the next cycle."""
        if config.refine:
            self._refiner(config.num_steps, config.num_scenarios, config.dt_s, _quadratic_weights(config),
                          config.refine_solver)

    # ------------------------------------------------------------------ public API

    def plan(self, ego: EgoState, forecasts: ForecastSet | None, reference: ReferencePath, now_s: float) -> Plan:
        """The lowest-risk plan for this instant, or a braking fallback with the reason."""
        start = time.perf_counter()
        config = self.config
        usable: ForecastSet | _Problem | None = _ego_problem(ego) or (
            None if math.isfinite(now_s) else _Problem(FallbackReason.NON_FINITE_INPUT, "non-finite input: now_s"))
        if usable is None:
            self._last_ego = ego
            usable = self._usable_forecasts(forecasts, now_s, config)
        if isinstance(usable, _Problem):
            plan = self.fallback_plan(ego, reference, now_s, *usable)
        else:
            try:
                plan = self._plan(ego, usable, reference, now_s, config)
            except Exception as exc:  # a bug or numerical failure must not leave the car without a plan
                log.exception("planning failed")
                plan = self.fallback_plan(ego, reference, now_s, FallbackReason.PLANNER_FAILURE,
                                          f"planner failure: {exc!r}")
        plan.planning_time_s = time.perf_counter() - start
        self.last_timings_s["total"] = plan.planning_time_s
        return plan

    def fallback_plan(self, ego: EgoState, reference: ReferencePath, now_s: float, fallback: FallbackReason,
                      reason: str) -> Plan:
        """Hard braking, holding the current lateral offset, with ``fallback`` and its detail ``reason``."""
        config = self.config
        times = np.arange(config.num_steps + 1) * config.dt_s
        base = ego if _ego_problem(ego) is None else self._last_ego
        try:
            states = self._braking_states(base, reference, config) if base is not None else None
        except Exception:  # the fallback itself must not fail: stand still where the ego was
            log.exception("braking fallback failed")
            states = None
        if states is None:
            states = _standstill(base, len(times))
        stamp = now_s if math.isfinite(now_s) else (base.stamp_s if base is not None else 0.0)
        return Plan(stamp_s=stamp, times_s=times, states=states, risk_measure=config.risk_measure,
                    risk_level=config.risk_level, fallback=fallback, reason=reason)

    # ------------------------------------------------------------------ steps

    def _usable_forecasts(self, forecasts: ForecastSet | None, now_s: float,
                          config: PlannerConfig) -> ForecastSet | _Problem:
        """The forecasts to plan on or why there are none; a None input reuses the last good set while fresh."""
        if forecasts is not None:
            try:
                validate_forecasts(forecasts)
            except InvalidForecast as exc:
                return _Problem(FallbackReason.INVALID_FORECAST, str(exc))
            self._last_forecasts = forecasts
        forecasts = forecasts or self._last_forecasts
        if forecasts is None:
            return _Problem(FallbackReason.MISSING_PREDICTIONS, "missing predictions")
        age = now_s - forecasts.stamp_s
        if age > config.prediction_timeout_s:
            return _Problem(FallbackReason.STALE_PREDICTIONS,
                            f"stale predictions ({age:.2f} s old, timeout {config.prediction_timeout_s:.2f} s)")
        if age < -config.prediction_timeout_s:
            return _Problem(FallbackReason.FUTURE_PREDICTIONS, f"predictions stamped {-age:.2f} s in the future")
        return forecasts

    def _plan(self, ego: EgoState, forecasts: ForecastSet, reference: ReferencePath, now_s: float,
              config: PlannerConfig) -> Plan:
        clock = _Clock(self.last_timings_s)
        _, d0, d_rate0 = ego_frenet(ego, reference)
        if not -reference.road_right_m - MAX_OFF_ROAD_M <= d0 <= reference.road_left_m + MAX_OFF_ROAD_M:
            return self.fallback_plan(ego, reference, now_s, FallbackReason.OFF_ROAD, f"ego {d0:+.1f} m beside "
                                      "the reference path: not on this road (wrong frame or reference?)")
        if reference is not self._lateral_reference:  # a new path: nothing carries over
            self._lane_target_m, self._lateral, self._lateral_reference = None, None, reference
        commitment = self._commitment(d0, d_rate0, reference, now_s)
        cands, model = candidates_and_cost(ego, reference, config, commitment, self._lateral_accel(now_s))
        self._lateral = None
        clock.lap("candidates")
        times_s = now_s + cands.times_s[1:]
        every_agent = forecasts  # the safety layer's leaders need not be within the cost's reach
        if config.prune_agents:
            keep = relevant_agents(forecasts, cands, model, times_s)
            forecasts = dataclasses.replace(forecasts, agents=[a for a, k in zip(forecasts.agents, keep, strict=True)
                                                               if k])
        clock.lap("relevance")
        scenarios = sample_scenarios(forecasts, config.num_scenarios, config.seed, times_s,
                                     validate=False)  # validated on arrival
        tracks = agent_tracks(scenarios, reference)
        tracks = tracks.select(model.relevant_columns(cands, tracks))
        clock.lap("scenarios")
        costs = self.cost_evaluator(model, cands, tracks)
        clock.lap("costs")
        measure = make_risk_measure(config.risk_measure)
        risks = measure.risk(costs, tracks.weights, config.risk_level)
        best = int(np.argmin(risks))
        clock.lap("risk")
        if not risks[best] <= config.max_acceptable_risk:
            return self.fallback_plan(ego, reference, now_s, FallbackReason.NO_ACCEPTABLE_CANDIDATE,
                                      f"no acceptable candidate (lowest risk "
                                      f"{risks[best]:.3g} > {config.max_acceptable_risk:.3g})")
        override, check = None, None
        if config.safety_check:
            check = self._rss_check(ego, every_agent, reference, cands, now_s, config)
            safe = check.candidates(cands)
            if not safe[best]:
                alternative = safe_choice(safe, risks, cands)
                if alternative is None:
                    self._lane_target_m = None  # the stop steers to the nearest lane centre
                    stop = self._in_lane_stop(ego, cands, model, tracks, reference, config)
                    clock.lap("safety")
                    return self._to_plan(stop, None, SafetyAction.IN_LANE_STOP, cands, risks, tracks, measure, config,
                                         now_s, forecasts)
                override, best = SafetyAction.SAFE_ALTERNATIVE, alternative
        self._commit(cands, best, d0, reference, now_s)
        self._lateral = (now_s, cands.times_s, cands.d_accel_mps2[best])
        clock.lap("safety")
        choice, note = _Choice(cands.states(best), costs[best]), None
        if config.refine and clock.elapsed_s() + max(self._refine_durations_s, default=0.0) > config.cycle_budget_s:
            note = PlanNote.REFINEMENT_SKIPPED_BUDGET  # anytime planning: the sampled best is a complete plan
            if self._refine_durations_s:  # forget the oldest, so a refinement is tried (and timed) again
                self._refine_durations_s.popleft()
        elif config.refine:
            refine_start = time.perf_counter()
            choice, note = self._refine(cands, best, model, tracks, measure, config, reference, check)
            self._refine_durations_s.append(time.perf_counter() - refine_start)
        clock.lap("refine")
        return self._to_plan(choice, note, override, cands, risks, tracks, measure, config, now_s, forecasts)

    def _lateral_accel(self, now_s: float) -> float:
        """The lateral accel the last plan has now (0 without one): moves continue it rather than restart."""
        if self._lateral is None:
            return 0.0
        stamp, times, d_accel = self._lateral
        age = now_s - stamp
        return float(np.interp(age, times, d_accel)) if 0.0 <= age <= times[-1] else 0.0

    def _commitment(self, d0_m: float, d_rate0_mps: float, reference: ReferencePath, now_s: float
                    ) -> LaneCommitment | None:
        """The lane change in progress, or None once it is finished (or its lane is not on this reference)."""
        target = self._lane_target_m
        if target is None:
            return None
        settled = abs(d0_m - target) < _LANE_CHANGE_DONE_M and abs(d_rate0_mps) < _SETTLED_MPS
        if settled or not np.any(np.isclose(reference.lane_offsets_m, target)):
            self._lane_target_m = None
            return None
        return LaneCommitment(target, self._lane_deadline_s - now_s)

    def _commit(self, cands: Candidates, best: int, d0_m: float, reference: ReferencePath, now_s: float) -> None:
        """Commit to the lane the chosen candidate ends in when it leaves the current lane (hysteresis:
        the commitment then sets the target lane until the change is done or a new choice leaves it)."""
        d = cands.d_m[best]
        end = reference.nearest_lane_offset(float(d[-1]))
        if end == self._lane_target_m:
            return
        if end == reference.nearest_lane_offset(d0_m):
            self._lane_target_m = None
            return
        arrival = int(np.argmax(np.abs(d - d[-1]) < _ARRIVED_M))
        self._lane_target_m, self._lane_deadline_s = end, now_s + float(cands.times_s[arrival])

    def _rss_check(self, ego: EgoState, forecasts: ForecastSet, reference: ReferencePath, cands: Candidates,
                   now_s: float, config: PlannerConfig) -> RssCheck:
        """The safety layer's view of this cycle: every agent's modes as possible leaders (before pruning)."""
        leaders = leader_tracks(forecasts, reference, now_s + cands.times_s, config.safety)
        return RssCheck(leaders, reference, ego.length_m, ego.width_m, braking_accel(cands), config.safety)

    def _in_lane_stop(self, ego: EgoState, cands: Candidates, model: CostModel, tracks: AgentTracks,
                      reference: ReferencePath, config: PlannerConfig) -> _Choice:
        """Hard braking to the nearest lane centre, costed like a candidate (no refinement: it is the last resort)."""
        stop = in_lane_stop(cands, reference, ego_frenet(ego, reference)[2], config.limits)
        dt = cands.dt_s
        costs = (model.longitudinal_cost(stop.v_mps[0], stop.a_mps2[0], cands.ego_accel_mps2, dt)
                 + model.lateral_cost(stop.d_m[0], stop.d_accel_mps2[0], dt)
                 + model.interaction_direct(stop.s_m[0, 1:], stop.v_mps[0, 1:], stop.d_m[0, 1:], tracks, dt))
        return _Choice(stop.states(0), costs)

    def _refine(self, cands: Candidates, best: int, model: CostModel, tracks: AgentTracks, measure: RiskMeasure,
                config: PlannerConfig, reference: ReferencePath, check: RssCheck | None
                ) -> tuple[_Choice, PlanNote | None]:
        """The CVaR-refined candidate if it truly lowers the risk (and passes ``check``), else the sampled one."""
        dt, steps = cands.dt_s, config.num_steps
        s, v, d = cands.s_m[best, 1:], cands.v_mps[best, 1:], cands.d_m[best, 1:]
        lateral = model.lateral_cost(cands.d_m[best], cands.d_accel_mps2[best], dt)
        loss, grad_s, grad_v = model.interaction_gradient(s, v, d, tracks, dt)
        base_costs = loss + lateral + model.longitudinal_cost(cands.v_mps[best], cands.a_mps2[best],
                                                               cands.ego_accel_mps2, dt)
        sampled = _Choice(cands.states(best), base_costs)
        grad = grad_s @ position_jacobian(steps, dt) + grad_v @ speed_jacobian(steps, dt)
        refiner = self._refiner(steps, tracks.num_scenarios, dt, _quadratic_weights(config), config.refine_solver)
        inputs = RefineInputs(
            accel_mps2=cands.a_mps2[best, :-1], speed_mps=v, prev_accel_mps2=cands.ego_accel_mps2, loss=loss,
            grad=grad, weights=tracks.weights, tail_scale=_tail_scale(config, tracks.weights),
            target_speed_mps=model.target_speed_mps,
        )
        result = refiner.refine(inputs, config.limits, config.refine_trust_region_mps2, config.refine_time_limit_s)
        if result is None:
            return sampled, PlanNote.REFINEMENT_SOLVER_FAILURE
        refined = self._rebuild(cands, best, result.accel_mps2, reference, config)
        if refined is None:
            return sampled, PlanNote.REFINEMENT_INFEASIBLE
        costs = (model.longitudinal_cost(refined.v_mps[0], refined.a_mps2[0], cands.ego_accel_mps2, dt) + lateral
                 + model.interaction_direct(refined.s_m[0, 1:], refined.v_mps[0, 1:], refined.d_m[0, 1:], tracks, dt))
        old = measure.risk(base_costs, tracks.weights, config.risk_level)
        new = measure.risk(costs, tracks.weights, config.risk_level)
        if new < old - _REFINE_MIN_GAIN and (check is None or bool(check.candidates(refined)[0])):
            return _Choice(refined.states(0), costs), None
        return sampled, None

    def _rebuild(self, cands: Candidates, best: int, accel_mps2: np.ndarray, reference: ReferencePath,
                 config: PlannerConfig) -> Candidates | None:
        """The refined trajectory on the best candidate's lateral profile (None if infeasible)."""
        lat = cands.lateral_index[best]
        s_rel, v, a = integrate_accel(cands.v_mps[best, 0], accel_mps2[None], cands.dt_s)
        rows = slice(lat, lat + 1)
        lat_rows = (cands.lat_d_m[rows], cands.lat_rate_mps[rows], cands.lat_accel_mps2[rows])
        single = compose(reference, float(cands.s_m[best, 0]), (s_rel, v, a), lat_rows, cands.dt_s, config.limits,
                         cands.ego_accel_mps2)
        return single if single.num == 1 else None

    def _refiner(self, steps: int, scenarios: int, dt_s: float, weights: QuadraticWeights,
                 solver: str) -> CvarRefiner:
        """The cached QP for these sizes and weights (built on first use, ~0.1 s)."""
        key = (steps, scenarios, round(dt_s, 9), weights, solver)
        if key not in self._refiners:
            if len(self._refiners) >= _MAX_CACHED_REFINERS:
                self._refiners.clear()
            self._refiners[key] = CvarRefiner(steps, scenarios, dt_s, weights, solver=solver)
        return self._refiners[key]

    def _to_plan(self, choice: _Choice, note: PlanNote | None, safety: SafetyAction | None, cands: Candidates,
                 risks: np.ndarray,
                 tracks: AgentTracks, measure: RiskMeasure, config: PlannerConfig, now_s: float,
                 forecasts: ForecastSet) -> Plan:
        w, level = tracks.weights, config.risk_level
        shown = _visualised(risks, config.num_visualised)
        return Plan(
            stamp_s=now_s,
            times_s=cands.times_s.copy(),
            states=choice.states,
            risk_measure=config.risk_measure,
            risk_level=level,
            risk=float(measure.risk(choice.costs, w, level)),
            expected_cost=float(choice.costs @ w),
            value_at_risk=float(ValueAtRisk().risk(choice.costs, w, level)),
            note=note,
            safety=safety,
            reason="; ".join(text for text in (SAFETY_REASONS.get(safety) if safety else None,
                                               NOTE_REASONS.get(note) if note else None) if text),
            num_candidates=cands.num,
            num_scenarios=tracks.num_scenarios,
            num_agents=len(forecasts.agents),
            prediction_stamp_s=forecasts.stamp_s,
            candidates_xy_m=np.stack([cands.x_m[shown], cands.y_m[shown]], axis=-1),
            candidates_risk=risks[shown].astype(np.float64),
        )

    def _braking_states(self, ego: EgoState, reference: ReferencePath, config: PlannerConfig) -> np.ndarray:
        """Jerk-limited full braking along the path at the ego's current lateral offset."""
        s0, d0, _ = ego_frenet(ego, reference)
        lim = config.limits
        a0 = float(np.clip(ego.a_mps2, -lim.max_decel_mps2, lim.max_accel_mps2))
        accel = np.empty(config.num_steps)
        a = a0
        for k in range(config.num_steps):  # jerk-limited ramp to full braking
            a = max(a - lim.max_jerk_mps3 * config.dt_s, -lim.max_decel_mps2)
            accel[k] = a
        lon = integrate_accel(max(ego.v_mps, 0.0), accel[None], config.dt_s)
        hold = np.zeros((1, config.num_steps + 1))
        return compose(reference, s0, lon, (hold + d0, hold, hold), config.dt_s, lim, a0, keep=(0, 0)).states(0)


class _Clock:
    """Stage timings into a dict (seconds since the previous lap)."""

    def __init__(self, sink: dict[str, float]) -> None:
        self.sink = sink
        self.sink.clear()
        self.start = self.last = time.perf_counter()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.sink[name] = now - self.last
        self.last = now


class _Problem(NamedTuple):
    """Why the planner cannot plan on its inputs: the fallback_plan arguments."""

    fallback: FallbackReason
    reason: str


def _ego_problem(ego: EgoState | None) -> _Problem | None:
    if ego is None:
        return _Problem(FallbackReason.MISSING_EGO, "missing ego state")
    for name in _EGO_FIELDS:
        if not math.isfinite(getattr(ego, name)):
            return _Problem(FallbackReason.NON_FINITE_INPUT, f"non-finite input: ego.{name}")
    if ego.length_m <= 0.0 or ego.width_m <= 0.0:
        return _Problem(FallbackReason.INVALID_EGO_FOOTPRINT, "invalid input: ego footprint must be positive")
    return None


def _quadratic_weights(config: PlannerConfig) -> QuadraticWeights:
    return QuadraticWeights(config.weights.progress, config.weights.comfort, config.weights.jerk_ratio)


def _tail_scale(config: PlannerConfig, weights: np.ndarray) -> float:
    """p = w / (1 - alpha) of the CVaR program standing in for the configured measure.

    The mean is CVaR at 0 and the worst case CVaR at 1 - min weight; VaR and the entropic risk use
    CVaR at the same level as their convex surrogate (the true measure decides whether to keep it).
    """
    if config.risk_measure == "mean":
        return 1.0
    if config.risk_measure == "worst":
        return 1.0 / float(weights[weights > 0.0].min())  # CVaR at 1 - min weight is the maximum
    return 1.0 / (1.0 - config.risk_level)


def _visualised(risks: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to ``count`` candidates spread over the risk ranking, best first."""
    order = np.argsort(risks, kind="stable")
    picks = np.unique(np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(np.int64))
    return order[picks]


def _standstill(ego: EgoState | None, num: int) -> np.ndarray:
    """Stand still at the last known pose (the origin if none is known)."""
    states = np.zeros((num, 5))
    if ego is not None:
        for col, value in enumerate((ego.x_m, ego.y_m, ego.yaw_rad)):
            states[:, col] = value if math.isfinite(value) else 0.0
    return states
