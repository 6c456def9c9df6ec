"""Risk problems for training and evaluation: a scene, the planner's candidate plans and its real cost.

A ``RiskProblem`` holds what the planner would build for one instant (candidates, ``CostModel``) so
that the cost of any plan on any set of joint samples is exactly the planner's cost. Scene
variations randomise RAP's didactic crossing and the highway scene of ``core/scenes.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rap_planner.core.candidates import Candidates
from rap_planner.core.costs import CostModel, agent_tracks
from rap_planner.core.planner import PlannerConfig, candidates_and_cost
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.scenarios import Scenarios
from rap_planner.core.scenes import didactic_scene, highway_scene
from rap_planner.core.types import EgoState, ForecastSet

Scene = tuple[EgoState, ForecastSet, ReferencePath]
SCENE_KINDS = ("didactic", "highway")
TRAIN_STREAM, EVAL_STREAM = 1, 2  # seed-sequence streams: training scenes never reappear in evaluation
_CANDIDATE_ROWS = ("s_m", "d_m", "x_m", "y_m", "yaw_rad", "v_mps", "a_mps2", "d_accel_mps2")


def scene_rng(seed: int, stream: int, kind: str, index: int) -> np.random.Generator:
    """The generator of one scene variation; training and evaluation draw from disjoint streams."""
    return np.random.default_rng((seed, stream, SCENE_KINDS.index(kind), index))


def didactic_variation(rng: np.random.Generator) -> Scene:
    """RAP's crossing scene with random fast-mode probability, speeds and geometry."""
    return didactic_scene(
        p_fast=float(rng.uniform(0.02, 0.4)),
        ego_speed_mps=float(rng.uniform(6.0, 14.0)),
        slow_speed_mps=float(rng.uniform(0.2, 1.0)),
        fast_speed_mps=float(rng.uniform(1.5, 3.0)),
        crossing_x_m=float(rng.uniform(15.0, 45.0)),
        start_y_m=float(rng.uniform(-7.0, -3.0)),
    )


def highway_variation(rng: np.random.Generator, max_agents: int = 32) -> Scene:
    """The curved highway scene with a random traffic draw, lane count, ego lane and speed."""
    lanes = int(rng.integers(2, 5))
    return highway_scene(
        num_agents=int(rng.integers(min(8, max_agents), max_agents + 1)),
        seed=int(rng.integers(2**31)),
        lanes=lanes,
        ego_lane=int(rng.integers(0, lanes)),
        ego_speed_mps=float(rng.uniform(14.0, 28.0)),
    )


def scene_variation(kind: str, rng: np.random.Generator, max_agents: int = 32) -> Scene:
    if kind == "didactic":
        return didactic_variation(rng)
    if kind == "highway":
        return highway_variation(rng, max_agents)
    raise ValueError(f"unknown scene kind {kind!r}; choose one of {SCENE_KINDS}")


def select_candidates(cands: Candidates, index: np.ndarray | Sequence[int]) -> Candidates:
    """The candidates ``index`` only, with only the profiles they use (the cost grid shrinks with them)."""
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    lon_used, lon_index = np.unique(cands.longitudinal_index[index], return_inverse=True)
    lat_used, lat_index = np.unique(cands.lateral_index[index], return_inverse=True)
    rows = {name: getattr(cands, name)[index] for name in _CANDIDATE_ROWS}
    return Candidates(
        times_s=cands.times_s, **rows,
        longitudinal_index=lon_index, lateral_index=lat_index,
        lon_s_m=cands.lon_s_m[lon_used], lon_v_mps=cands.lon_v_mps[lon_used], lon_a_mps2=cands.lon_a_mps2[lon_used],
        lat_d_m=cands.lat_d_m[lat_used], lat_rate_mps=cands.lat_rate_mps[lat_used],
        lat_accel_mps2=cands.lat_accel_mps2[lat_used], braking_index=-1, ego_accel_mps2=cands.ego_accel_mps2,
    )


@dataclass
class RiskProblem:
    """One planning instant: forecasts, the planner's candidates and its cost model.

    The forecast stamp is the planning time, so candidate row t + 1 lies on forecast step t.
    """

    ego: EgoState
    forecasts: ForecastSet
    reference: ReferencePath
    candidates: Candidates
    cost_model: CostModel

    @classmethod
    def from_scene(cls, scene: Scene, config: PlannerConfig | None = None) -> RiskProblem:
        """Candidates and cost model exactly as ``RiskAwarePlanner`` builds them for this scene."""
        ego, forecasts, reference = scene
        config = config or PlannerConfig(horizon_s=forecasts.num_steps * forecasts.dt_s, dt_s=forecasts.dt_s)
        if config.num_steps != forecasts.num_steps or not math.isclose(config.dt_s, forecasts.dt_s):
            raise ValueError("the planner's time grid must be the forecast's")
        cands, model = candidates_and_cost(ego, reference, config)
        return cls(ego, forecasts, reference, cands, model)

    @property
    def times_s(self) -> np.ndarray:
        """Absolute times of the forecast steps."""
        f = self.forecasts
        return f.stamp_s + f.dt_s * np.arange(1, f.num_steps + 1)

    def plan_xy(self, candidate: int) -> np.ndarray:
        """(T, 2) positions of a candidate at the forecast steps."""
        return np.stack([self.candidates.x_m[candidate, 1:], self.candidates.y_m[candidate, 1:]], axis=1)

    def keep_speed_candidate(self) -> int:
        """The candidate that holds the lane and stays closest to the current speed (the risk-neutral habit)."""
        c = self.candidates
        lane_m = self.reference.nearest_lane_offset(float(c.d_m[0, 0]))
        hold = np.flatnonzero(np.abs(c.d_m[:, -1] - lane_m) < 1e-6)  # ends on the nearest lane centre
        gap = np.abs(c.v_mps[hold] - self.ego.v_mps).sum(axis=1)
        return int(hold[np.argmin(gap)])

    def costs(self, positions_m: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        """(C, S) planner costs of candidates (all when None) on joint samples (S, N, T, 2)."""
        cands = self.candidates if candidates is None else select_candidates(self.candidates, candidates)
        f = self.forecasts
        num = positions_m.shape[0]
        scenarios = Scenarios(
            positions_m=positions_m, weights=np.full(num, 1.0 / num), times_s=self.times_s,
            agent_ids=np.array([a.agent_id for a in f.agents], dtype=np.int64),
            lengths_m=np.array([a.length_m for a in f.agents], dtype=np.float64),
            widths_m=np.array([a.width_m for a in f.agents], dtype=np.float64),
        )
        return self.cost_model.evaluate(cands, agent_tracks(scenarios, self.reference))

    def deterministic_cost(self, candidate: int) -> float:
        """The scenario-independent part of a candidate's cost."""
        return float(self.cost_model.deterministic(select_candidates(self.candidates, [candidate]))[0])
