"""The closed loop without DDS: world -> tracker noise -> Stack -> world, in lock-step.

The stack is the nodes' own pipeline (``rap_planner.core.pipeline``) configured from the same
parameter files, called directly: reproducible, and fast enough to run many seeds in parallel
processes for evaluation. The nodes' loop over DDS is exercised by `make demo` and the tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rap_planner.core.pipeline import PlanningPipeline, PredictionPipeline, PredictionSettings, Stack, StackOutput
from rap_planner.core.planner import PlannerConfig
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.types import EgoState, TrackedAgent
from rap_planner.sim.baselines import IdmMobilDriver, IdmParams
from rap_planner.sim.episode import EpisodeRecorder, follow_plan, stop_line_agents
from rap_planner.sim.world import SumoWorld, noisy_agents

StepHook = Callable[[list[TrackedAgent], EgoState, float, StackOutput], None]
BASELINES = ("sumo", "idm")  # SUMO's own driver as the ego; IDM + MOBIL on the tracked agents


@dataclass(frozen=True)
class LoopConfig:
    scenario: str = "highway_cutin"
    seed: int = 0
    step_s: float = 0.1
    pos_noise_m: float = 0.0
    vel_noise_mps: float = 0.0
    dropout_prob: float = 0.0
    keep_frames: bool = False
    until_s: float = math.inf  # stop here even if the scenario has not ended (short runs, tests)


def planning_reference(world: SumoWorld) -> ReferencePath:
    """The planner's reference path for the world's ego route (same data the sim node publishes)."""
    ref = world.reference_path()
    return ReferencePath.from_polyline(ref.centerline_m, lane_width_m=ref.lane_width_m,
                                       lane_offsets_m=ref.lane_offsets_m, speed_limit_mps=ref.speed_limit_mps)


def run_episode(loop: LoopConfig, planner_config: PlannerConfig, model: ForecastModel,
                prediction: PredictionSettings | None = None, on_step: StepHook | None = None) -> EpisodeRecorder:
    """One episode until collision, goal or timeout; returns the recorder (metrics, frames).

    ``on_step(agents, ego, now_s, output)`` sees every instant's stack inputs and outputs (tests record them).
    """
    rng = np.random.default_rng(loop.seed)
    with SumoWorld(loop.scenario, seed=loop.seed, step_s=loop.step_s) as world:
        stack = Stack(PredictionPipeline(model, prediction),
                      PlanningPipeline(dataclasses.replace(planner_config, seed=loop.seed), planning_reference(world)))
        recorder = EpisodeRecorder(world, keep_frames=loop.keep_frames)
        while True:
            now_s = world.time_s
            agents = noisy_agents(world.agents(), rng, loop.pos_noise_m, loop.vel_noise_mps, loop.dropout_prob)
            agents += stop_line_agents(world)
            ego = world.ego()
            output = stack.step(agents, ego, now_s)
            if on_step is not None:
                on_step(agents, ego, now_s, output)
            recorder.set_forecasts(output.forecasts)
            x, y, yaw, v = follow_plan(output.plan, ego, now_s + loop.step_s)
            world.apply_ego_state(x, y, yaw, v)
            world.step()
            recorder.record(output.plan)
            if world.done() or not world.ego_present or world.time_s >= loop.until_s - 1e-9:
                return recorder


def run_baseline_episode(loop: LoopConfig, baseline: str, desired_speed_mps: float) -> EpisodeRecorder:
    """The same episode as ``run_episode`` (seed, traffic, scripted events, tracker noise) with a
    baseline ego: ``sumo`` (SUMO's driver) or ``idm`` (``IdmMobilDriver`` at ``desired_speed_mps``)."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
    rng = np.random.default_rng(loop.seed)
    with SumoWorld(loop.scenario, seed=loop.seed, step_s=loop.step_s, ego_controlled=baseline != "sumo") as world:
        driver = (IdmMobilDriver(world.reference_path(), loop.step_s, IdmParams(desired_speed_mps=desired_speed_mps))
                  if baseline == "idm" else None)
        recorder = EpisodeRecorder(world, keep_frames=loop.keep_frames)
        while True:
            if driver is not None:
                agents = noisy_agents(world.agents(), rng, loop.pos_noise_m, loop.vel_noise_mps, loop.dropout_prob)
                world.apply_ego_state(*driver.step(world.ego(), agents + stop_line_agents(world)))
            world.step()
            recorder.record(None)
            if world.done() or not world.ego_present or world.time_s >= loop.until_s - 1e-9:
                return recorder
