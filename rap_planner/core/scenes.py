"""Hand-built scenes: RAP's didactic crossing scene (tests, demos, the DDS test) and a highway scene
for the planner benchmark. Each returns plain core types, so any layer can reuse it."""

from __future__ import annotations

import math

import numpy as np

from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.types import AgentForecast, EgoState, ForecastSet

CROSSER_ID = 1


def _gaussian_spread(num_modes: int, times_s: np.ndarray, base_m: float, growth_mps: float) -> np.ndarray:
    """(K, T, 2, 2) isotropic covariances whose standard deviation grows linearly in time."""
    sigma = base_m + growth_mps * times_s
    cov = np.zeros((num_modes, len(times_s), 2, 2))
    cov[..., 0, 0] = sigma**2
    cov[..., 1, 1] = sigma**2
    return cov


def didactic_scene(
    p_fast: float = 0.2,
    ego_speed_mps: float = 10.0,
    slow_speed_mps: float = 0.5,
    fast_speed_mps: float = 2.0,
    crossing_x_m: float = 27.5,
    start_y_m: float = -5.0,
    stamp_s: float = 0.0,
    horizon_s: float = 5.0,
    dt_s: float = 0.2,
) -> tuple[EgoState, ForecastSet, ReferencePath]:
    """RAP's didactic scene: the ego drives along a straight one-lane road at its speed limit while a
    road user (a pedestrian) waits to cross ``crossing_x_m`` ahead, from the right.

    The 2-mode forecast: slow (probability 1 - p_fast) — it creeps and stays off the lane for the whole
    horizon; fast (p_fast) — it steps into the lane just as the ego arrives. Keeping speed is fine in
    expectation but collides in the fast mode: a risk-neutral plan keeps its speed, a CVaR plan with
    risk level above 1 - p_fast yields.
    """
    if not 0.0 < p_fast < 1.0:
        raise ValueError("p_fast must be in (0, 1)")
    reference = ReferencePath.straight(length_m=300.0, lanes=1, speed_limit_mps=ego_speed_mps, origin_xy_m=(-50.0, 0.0))
    ego = EgoState(stamp_s=stamp_s, x_m=0.0, y_m=0.0, yaw_rad=0.0, v_mps=ego_speed_mps)
    steps = int(round(horizon_s / dt_s))
    times = dt_s * np.arange(1, steps + 1)
    x = np.full(steps, crossing_x_m)
    slow = np.stack([x, start_y_m + slow_speed_mps * times], axis=1)
    fast = np.stack([x, start_y_m + fast_speed_mps * times], axis=1)
    crosser = AgentForecast(
        agent_id=CROSSER_ID,
        weights=np.array([1.0 - p_fast, p_fast]),
        means_m=np.stack([slow, fast]),
        covariances_m2=_gaussian_spread(2, times, 0.05, 0.05),
        length_m=0.8,
        width_m=0.8,
    )
    return ego, ForecastSet(stamp_s=stamp_s, dt_s=dt_s, num_steps=steps, agents=[crosser]), reference


def highway_scene(
    num_agents: int = 32,
    seed: int = 0,
    lanes: int = 4,
    ego_lane: int = 1,
    ego_speed_mps: float = 20.0,
    radius_m: float = 1500.0,
    stamp_s: float = 0.0,
    horizon_s: float = 5.0,
    dt_s: float = 0.2,
) -> tuple[EgoState, ForecastSet, ReferencePath]:
    """A gently curved multi-lane highway with ``num_agents`` vehicles around the ego.

    Every agent gets three modes (keep lane at constant speed, change lane, brake) with growing
    uncertainty; positions follow the curved lanes, so Frenet projection is exercised for real.
    """
    rng = np.random.default_rng(seed)
    lane_width = 3.5
    arc = np.linspace(-150.0, 650.0, 161) / radius_m  # angle along a circle turning left
    centre = np.stack([radius_m * np.sin(arc), radius_m * (1.0 - np.cos(arc))], axis=1)
    reference = ReferencePath(centre, lane_width_m=lane_width, lane_offsets_m=lane_width * np.arange(lanes),
                              speed_limit_mps=30.0)
    s_ego = 150.0
    ego_xy = reference.to_cartesian(np.array(s_ego), np.array(ego_lane * lane_width))
    ego = EgoState(stamp_s=stamp_s, x_m=float(ego_xy[0]), y_m=float(ego_xy[1]), yaw_rad=float(ego_xy[2]),
                   v_mps=ego_speed_mps)
    steps = int(round(horizon_s / dt_s))
    times = dt_s * np.arange(1, steps + 1)
    agents = []
    for agent_id in range(num_agents):
        lane = int(rng.integers(0, lanes))
        s0 = s_ego + rng.uniform(-60.0, 140.0)
        if lane == ego_lane and abs(s0 - s_ego) < 12.0:
            s0 = s_ego + math.copysign(12.0, s0 - s_ego)
        speed = rng.uniform(14.0, 26.0)
        s_path = s0 + speed * times
        d_keep = np.full(steps, lane * lane_width)
        side = 1 if lane == 0 else (-1 if lane == lanes - 1 else int(rng.choice([-1, 1])))
        d_change = lane * lane_width + side * lane_width * np.clip(times / 3.0, 0.0, 1.0)
        s_brake = s0 + speed * times - 0.5 * 2.0 * times**2
        modes = []
        for s_mode, d_mode in ((s_path, d_keep), (s_path, d_change), (s_brake, d_keep)):
            xs, ys, _ = reference.to_cartesian(s_mode, d_mode)
            modes.append(np.stack([xs, ys], axis=1))
        agents.append(AgentForecast(agent_id=agent_id, weights=np.array([0.7, 0.15, 0.15]), means_m=np.stack(modes),
                                    covariances_m2=_gaussian_spread(3, times, 0.2, 0.3)))
    return ego, ForecastSet(stamp_s=stamp_s, dt_s=dt_s, num_steps=steps, agents=agents), reference
