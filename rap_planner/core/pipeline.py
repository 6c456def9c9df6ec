"""The per-cycle pipeline: tracks -> forecasts -> plan, written once.

The nodes, the in-process closed loop, the benches and the biased sampler's training all call these
classes, so what ``eval closed-loop`` measures is what ``ros2 launch`` runs. The ROS nodes only add
subscriptions, message conversion, parameters and publishing around them (openpilot's
update/publish split); a simulation or a bench calls ``Stack.step`` in lock-step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rap_planner.core.array_types import FloatArray
from rap_planner.core.biased.sampler import BiasedSampler
from rap_planner.core.history import AgentHistoryBuffer, UpdateReport
from rap_planner.core.parameters import PLANNER, PREDICTOR
from rap_planner.core.planner import PlannerConfig, RiskAwarePlanner
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.types import EgoState, FallbackReason, ForecastSet, Plan, TrackedAgent


@dataclass(frozen=True)
class PredictionSettings:
    """What the prediction stage can be told at run time (the predictor node's parameters)."""

    max_agents: int = PREDICTOR.config_default("max_agents", int)  # nearest to the ego take the free slots
    max_track_age_s: float = PREDICTOR.config_default("max_track_age_s", float)
    biased_samples: int = PREDICTOR.config_default("biased_samples", int)  # RAP risk-biased samples; 0: mixtures
    sample_risk_level: float = PREDICTOR.config_default("sample_risk_level", float)

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> PredictionSettings:
        """The settings among the predictor node's parameter values (validated by its schema)."""
        return PREDICTOR.build_config(cls(), {k: v for k, v in values.items() if k in PREDICTOR})


class PredictionPipeline:
    """Track histories and the forecast model: ``add_tracks`` on every tracker message, ``step`` per cycle."""

    def __init__(self, model: ForecastModel, settings: PredictionSettings | None = None,
                 sampler: BiasedSampler | None = None) -> None:
        self.model = model
        self.settings = settings or PredictionSettings()
        cfg = model.config
        self.buffer = AgentHistoryBuffer(history_s=cfg.history_s, dt_s=cfg.dt_s,
                                         max_age_s=self.settings.max_track_age_s,
                                         max_agents=self.settings.max_agents)
        self._sampler = sampler
        self._ego_plan: Plan | None = None

    def update_settings(self, settings: PredictionSettings) -> None:
        """Applied from the next message and cycle."""
        self.settings = settings
        self.buffer.max_age_s = settings.max_track_age_s
        self.buffer.max_agents = settings.max_agents

    def add_tracks(self, agents: list[TrackedAgent], stamp_s: float,
                   ego_xy_m: FloatArray | None = None) -> UpdateReport:
        """Buffer one tracker message; when there are more agents than slots the nearest to the ego win."""
        if len(agents) > self.buffer.max_agents and ego_xy_m is not None:
            ego_x, ego_y = float(ego_xy_m[0]), float(ego_xy_m[1])
            agents = sorted(agents, key=lambda a: (a.x_m - ego_x) ** 2 + (a.y_m - ego_y) ** 2)
        return self.buffer.update(agents, stamp_s)

    def set_ego_plan(self, plan: Plan) -> None:
        """The ego's current plan: what the risk-biased samples are drawn against (finite plans only)."""
        if len(plan.times_s) and bool(np.isfinite(plan.states[:, :2]).all()):
            self._ego_plan = plan

    def step(self, ego_xy_m: FloatArray | None = None) -> ForecastSet:
        """Forecasts of every buffered agent at the newest stamp (learned model for those nearest the ego)."""
        window = self.buffer.window()
        forecasts = self.model.predict_set(window, window.now_s, centre_m=ego_xy_m)
        return self._with_biased_samples(forecasts)

    def _with_biased_samples(self, forecasts: ForecastSet) -> ForecastSet:
        count = self.settings.biased_samples
        if count == 0 or self._ego_plan is None or not forecasts.agents:
            return forecasts
        if self._sampler is None:
            self._sampler = BiasedSampler.default()
        seed = abs(int(round(forecasts.stamp_s * 1e3)))  # from the stamp: replays and reruns draw the same
        return self._sampler.sample(forecasts, plan_on_grid(self._ego_plan, forecasts),
                                    self.settings.sample_risk_level, count, seed)


def plan_on_grid(plan: Plan, forecasts: ForecastSet) -> FloatArray:
    """The plan's (x, y) at the forecast's steps (``stamp + (t + 1) dt``), clamped at its ends."""
    times_s = forecasts.stamp_s + forecasts.dt_s * np.arange(1, forecasts.num_steps + 1)
    plan_times_s = plan.stamp_s + np.asarray(plan.times_s)
    return np.stack([np.interp(times_s, plan_times_s, plan.states[:, i]) for i in (0, 1)], axis=1)


def _planner_default_s(name: str) -> float:
    value = PLANNER[name].default
    if not isinstance(value, float):
        raise TypeError(f"{name}: the schema gives {value!r}, not seconds")
    return value


_DEFAULT_ODOM_TIMEOUT_S = _planner_default_s("odom_timeout_s")


class PlanningPipeline:
    """The planner on one reference path, with the odometry age check the node applies."""

    def __init__(self, config: PlannerConfig, reference: ReferencePath, odom_timeout_s: float | None = None) -> None:
        self.planner = RiskAwarePlanner(config)
        self.reference = reference
        self.odom_timeout_s = _DEFAULT_ODOM_TIMEOUT_S if odom_timeout_s is None else odom_timeout_s
        self._accel = AccelerationEstimator()

    @property
    def config(self) -> PlannerConfig:
        return self.planner.config

    def update_config(self, config: PlannerConfig, odom_timeout_s: float | None = None) -> None:
        """Validated and used from the next step."""
        self.planner.update_config(config)
        if odom_timeout_s is not None:
            self.odom_timeout_s = odom_timeout_s

    def step(self, ego: EgoState, forecasts: ForecastSet | None, now_s: float) -> Plan:
        """The plan for ``now_s``; stale odometry or any failure gives the braking fallback, never an exception."""
        try:
            ego = self._accel.update(ego)
            age_s = now_s - ego.stamp_s
            if math.isfinite(age_s) and age_s > self.odom_timeout_s:
                plan = self.planner.fallback_plan(ego, self.reference, now_s, FallbackReason.STALE_ODOMETRY,
                                                  f"stale odometry ({age_s:.2f} s old)")
            else:
                plan = self.planner.plan(ego, forecasts, self.reference, now_s)
        except Exception as exc:  # never leave the car without a plan
            plan = self.planner.fallback_plan(ego, self.reference, now_s, FallbackReason.PLANNER_FAILURE,
                                              f"planner exception: {exc!r}")
        return plan


class AccelerationEstimator:
    """The ego's acceleration from successive speeds: odometry carries none, so every caller gets this one."""

    def __init__(self, max_gap_s: float = 1.0) -> None:
        self.max_gap_s = max_gap_s
        self._last: EgoState | None = None
        self._accel_mps2 = 0.0

    def update(self, ego: EgoState) -> EgoState:
        """``ego`` with ``a_mps2`` replaced by the mean acceleration since the previous new stamp (0 after a gap)."""
        last = self._last
        if last is not None and ego.stamp_s == last.stamp_s:
            return dataclasses.replace(ego, a_mps2=self._accel_mps2)
        gap_s = ego.stamp_s - last.stamp_s if last is not None else math.inf
        accel = (ego.v_mps - last.v_mps) / gap_s if last is not None and 0.0 < gap_s <= self.max_gap_s else 0.0
        self._accel_mps2 = accel if math.isfinite(accel) else 0.0
        self._last = ego
        return dataclasses.replace(ego, a_mps2=self._accel_mps2)


@dataclass
class StackOutput:
    forecasts: ForecastSet
    plan: Plan


class Stack:
    """Prediction then planning for one instant, in lock-step: what the node graph does per tracker message."""

    def __init__(self, prediction: PredictionPipeline, planning: PlanningPipeline) -> None:
        self.prediction = prediction
        self.planning = planning

    def step(self, agents: list[TrackedAgent], ego: EgoState, now_s: float) -> StackOutput:
        ego_xy_m = np.array([ego.x_m, ego.y_m])
        self.prediction.add_tracks(agents, now_s, ego_xy_m)
        forecasts = self.prediction.step(ego_xy_m)
        plan = self.planning.step(ego, forecasts, now_s)
        self.prediction.set_ego_plan(plan)
        return StackOutput(forecasts, plan)
