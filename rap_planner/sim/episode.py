"""One closed-loop episode's bookkeeping: moving the ego along a plan, recording, metrics.

Shared by sim_node (over DDS) and the in-process evaluation loop, so both measure the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rap_planner.core.types import EgoState, ForecastSet, Plan, TrackedAgent
from rap_planner.sim.geometry import footprint
from rap_planner.sim.render import EpisodeFrame, frame_from
from rap_planner.sim.world import SumoWorld


def follow_plan(plan: Plan | None, ego: EgoState, t_s: float) -> tuple[float, float, float, float]:
    """Ego pose (x, y, yaw, v) at absolute time ``t_s``: the plan interpolated, or constant velocity
    along the heading while no plan exists (or the plan has run out)."""
    if plan is None or len(plan.times_s) == 0:
        dt = max(t_s - ego.stamp_s, 0.0)
        return (ego.x_m + ego.v_mps * dt * math.cos(ego.yaw_rad), ego.y_m + ego.v_mps * dt * math.sin(ego.yaw_rad),
                ego.yaw_rad, ego.v_mps)
    times = plan.stamp_s + np.asarray(plan.times_s)
    if t_s <= times[0]:
        # the plan starts later than t_s (first point is one step ahead): interpolate from the ego
        u = 0.0 if times[0] <= ego.stamp_s else (t_s - ego.stamp_s) / (times[0] - ego.stamp_s)
        first = plan.states[0]
        yaw = ego.yaw_rad + u * math.remainder(first[2] - ego.yaw_rad, 2 * math.pi)
        return (ego.x_m + u * (first[0] - ego.x_m), ego.y_m + u * (first[1] - ego.y_m), yaw,
                ego.v_mps + u * (first[3] - ego.v_mps))
    x, y, v = (float(np.interp(t_s, times, plan.states[:, i])) for i in (0, 1, 3))
    yaw = float(np.interp(t_s, times, np.unwrap(plan.states[:, 2])))
    return x, y, yaw, max(v, 0.0)


NEAR_M = 20.0  # footprint distances are computed for agents this close (centre gap less half lengths)


STOP_LINE_AGENT_ID = 1_000_000_000  # reserved track id of the virtual wall at a red light
COMFORT_DECEL_MPS2 = 3.0  # a yellow light closer than the comfortable stopping distance is driven through
SIGNAL_RANGE_M = 120.0


def stop_line_agents(world: SumoWorld) -> list[TrackedAgent]:
    """A red (or stoppable yellow) light ahead as a virtual wall across the ego's lane.

    The planner has no map layer: like a perception stack reporting a stop line as an obstacle,
    the simulator's "tracker" reports the wall, and prediction and planning treat it like any
    standing object.
    """
    signal = world.ego_signal() if world.ego_present else None
    if signal is None:
        return []
    distance_m, state = signal
    ego = world.ego()
    stopping_m = ego.v_mps**2 / (2.0 * COMFORT_DECEL_MPS2)
    red = state in ("r", "s")
    stoppable_yellow = state == "y" and distance_m > stopping_m
    if distance_m > SIGNAL_RANGE_M or not (red or stoppable_yellow):
        return []
    reference = world.reference_path()
    s_ego_m, _ = reference.project(ego.x_m, ego.y_m)
    x, y, yaw = reference.point_at(s_ego_m + 0.5 * ego.length_m + distance_m + 1.0)
    return [TrackedAgent(STOP_LINE_AGENT_ID, world.time_s, x, y, yaw, 0.0, 0.0, length_m=2.0,
                         width_m=reference.lane_width_m, classification=0)]


@dataclass
class EpisodeMetrics:
    """What an evaluation compares between risk levels."""

    collision: bool = False
    goal_reached: bool = False
    duration_s: float = 0.0
    progress_m: float = 0.0
    min_distance_m: float = math.inf
    min_ttc_s: float = math.inf
    max_abs_jerk_mps3: float = 0.0
    fallback_count: int = 0
    plan_latency_ms: list[float] = field(default_factory=list)


class EpisodeRecorder:
    """Collects frames for rendering and the metrics of one episode, one ``record`` per step."""

    def __init__(self, world: SumoWorld, keep_frames: bool = True):
        self.world = world
        self.keep_frames = keep_frames
        self.frames: list[EpisodeFrame] = []
        self.metrics = EpisodeMetrics()
        self._start_s = world.ego_progress_m()
        self._forecasts: ForecastSet | None = None
        self._accels: list[float] = []
        self._closest_m = math.inf
        self.closest_frame = -1  # the frame of the closest approach: the one worth a still picture

    def set_forecasts(self, forecasts: ForecastSet) -> None:
        self._forecasts = forecasts

    def record(self, plan: Plan | None) -> None:
        world, m = self.world, self.metrics
        ego, agents = world.ego(), world.agents()
        events = world.events()
        m.collision = m.collision or any(e.kind == "collision" for e in events)
        m.goal_reached = m.goal_reached or any(e.kind == "goal_reached" for e in events)
        m.duration_s = world.time_s
        m.progress_m = world.ego_progress_m() - self._start_s
        self._accels.append(ego.a_mps2)
        if len(self._accels) >= 2:
            m.max_abs_jerk_mps3 = max(m.max_abs_jerk_mps3, abs(self._accels[-1] - self._accels[-2]) / world.step_s)
        if plan is not None:
            m.fallback_count += 0 if plan.ok else 1
            m.plan_latency_ms.append(1e3 * plan.planning_time_s)
        self._update_proximity(ego, agents)
        if self.keep_frames:
            if self.metrics.min_distance_m < self._closest_m:
                self._closest_m = self.metrics.min_distance_m
                self.closest_frame = len(self.frames)
            self.frames.append(frame_from(world.time_s, ego, agents, self._forecasts, plan))

    def _update_proximity(self, ego: EgoState, agents) -> None:
        """Footprint-to-footprint distance (0 when touching) and TTC to agents in the ego's lane ahead."""
        if not agents:
            return
        rel = np.array([[a.x_m - ego.x_m, a.y_m - ego.y_m] for a in agents])
        vel = np.array([[a.vx_mps - ego.v_mps * math.cos(ego.yaw_rad), a.vy_mps - ego.v_mps * math.sin(ego.yaw_rad)]
                        for a in agents])
        half = np.array([0.5 * (a.length_m + ego.length_m) for a in agents])
        near = np.flatnonzero(np.linalg.norm(rel, axis=1) < half + NEAR_M)
        if near.size:
            ego_box = footprint(ego.x_m, ego.y_m, ego.yaw_rad, ego.length_m, ego.width_m)
            gaps = [ego_box.distance(footprint(a.x_m, a.y_m, a.yaw_rad, a.length_m, a.width_m))
                    for a in (agents[i] for i in near)]
            self.metrics.min_distance_m = min(self.metrics.min_distance_m, float(min(gaps)))
        heading = np.array([math.cos(ego.yaw_rad), math.sin(ego.yaw_rad)])
        ahead = rel @ heading
        lateral = np.abs(rel @ np.array([-heading[1], heading[0]]))
        closing = -(vel @ heading)
        in_lane = (ahead > 0) & (lateral < 2.0) & (closing > 1e-3)
        if in_lane.any():
            ttc = (ahead[in_lane] - half[in_lane]) / closing[in_lane]
            self.metrics.min_ttc_s = min(self.metrics.min_ttc_s, float(max(ttc.min(), 0.0)))
