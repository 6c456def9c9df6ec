"""The closed loop without DDS: world -> tracker noise -> predictor -> planner -> world, in lock-step.

The same parts as the nodes (history buffer, ForecastModel, RiskAwarePlanner, follow_plan,
EpisodeRecorder), called directly: reproducible, and fast enough to run many seeds in parallel
processes for evaluation. The nodes' own loop over DDS is exercised by `make demo` and the tests.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from rap_planner.core.biased.sampler import BiasedSampler
from rap_planner.core.forecasting import forecast_agents, plan_on_grid
from rap_planner.core.history import AgentHistoryBuffer
from rap_planner.core.planner import PlannerConfig, RiskAwarePlanner
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.reference_path import ReferencePath
from rap_planner.sim.episode import EpisodeRecorder, follow_plan, stop_line_agents
from rap_planner.sim.world import SumoWorld, noisy_agents


@dataclass(frozen=True)
class LoopConfig:
    scenario: str = "highway_cutin"
    seed: int = 0
    step_s: float = 0.1
    pos_noise_m: float = 0.0
    vel_noise_mps: float = 0.0
    dropout_prob: float = 0.0
    keep_frames: bool = False
    biased_samples: int = 0  # >0: RAP risk-biased weighted samples for the last plan replace the planner's draws


def planning_reference(world: SumoWorld) -> ReferencePath:
    """The planner's reference path for the world's ego route (same data the sim node publishes)."""
    ref = world.reference_path()
    return ReferencePath.from_polyline(ref.centerline_m, lane_width_m=ref.lane_width_m,
                                       lane_offsets_m=ref.lane_offsets_m, speed_limit_mps=ref.speed_limit_mps)


def run_episode(loop: LoopConfig, planner_config: PlannerConfig, model: ForecastModel) -> EpisodeRecorder:
    """One episode until collision, goal or timeout; returns the recorder (metrics, frames)."""
    planner = RiskAwarePlanner(dataclasses.replace(planner_config, seed=loop.seed))
    rng = np.random.default_rng(loop.seed)
    cfg = model.config
    buffer = AgentHistoryBuffer(history_s=cfg.history_s, dt_s=cfg.dt_s, max_agents=64)
    sampler = BiasedSampler.default() if loop.biased_samples else None
    plan = None
    with SumoWorld(loop.scenario, seed=loop.seed, step_s=loop.step_s) as world:
        reference = planning_reference(world)
        recorder = EpisodeRecorder(world, keep_frames=loop.keep_frames)
        while True:
            now_s = world.time_s
            agents = noisy_agents(world.agents(), rng, loop.pos_noise_m, loop.vel_noise_mps, loop.dropout_prob)
            agents += stop_line_agents(world)
            buffer.update(agents, now_s)
            ego = world.ego()
            forecasts = forecast_agents(model, buffer, np.array([ego.x_m, ego.y_m]))
            if sampler is not None and plan is not None and forecasts.agents:
                forecasts = sampler.sample(forecasts, plan_on_grid(plan, forecasts), planner.config.risk_level,
                                           loop.biased_samples, seed=int(round(now_s / loop.step_s)))
            recorder.set_forecasts(forecasts)
            start = time.perf_counter()
            plan = planner.plan(world.ego(), forecasts, reference, now_s)
            plan.planning_time_s = time.perf_counter() - start
            x, y, yaw, v = follow_plan(plan, world.ego(), now_s + loop.step_s)
            world.apply_ego_state(x, y, yaw, v)
            world.step()
            recorder.record(plan)
            if world.done() or not world.ego_present:
                return recorder
