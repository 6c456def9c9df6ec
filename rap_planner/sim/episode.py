"""One closed-loop episode's bookkeeping: moving the ego along a plan, recording, metrics.

Shared by sim_node (over DDS) and the in-process evaluation loop, so both measure the same way.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rap_planner.core.types import EgoState, ForecastSet, Plan, TrackedAgent
from rap_planner.sim.fault import OFF_CENTRE_M, Body, CutIn, ImpactContext, attribute
from rap_planner.sim.geometry import footprint
from rap_planner.sim.render import EpisodeFrame, frame_from
from rap_planner.sim.world import EGO_AGENT_ID, SumoWorld, VehicleArrays


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
    at_fault: bool = False  # the ego caused the collision (rap_planner.sim.fault)
    collision_side: str = ""  # where the other touched the ego: front, rear, side
    fault_reason: str = ""
    goal_reached: bool = False
    time_to_goal_s: float = math.inf
    off_lane_s: float = 0.0  # time with the ego's centre more than 0.8 m from every lane centre
    duration_s: float = 0.0
    progress_m: float = 0.0
    min_distance_m: float = math.inf
    min_ttc_s: float = math.inf
    max_abs_jerk_mps3: float = 0.0
    fallback_count: int = 0
    plan_latency_ms: list[float] = field(default_factory=list)


DECEL_WINDOW_S = 2.0  # the ego's hardest braking over this long is what a follower had to cope with
LATERAL_SPEED_WINDOW_S = 0.5  # the ego's sideways speed is measured over this long
WATCH_RANGE_M = 80.0  # vehicles this close are watched for entries into the ego's lane
INTRUSION_M = 0.3  # a vehicle whose side is this far over the ego lane's line has entered it


class LaneWatch:
    """The ego's lane keeping and other vehicles' entries into its lane, one ``update`` per step:
    the off-lane time and the context a collision is judged in (``rap_planner.sim.fault``)."""

    def __init__(self, world: SumoWorld) -> None:
        self.reference = world.reference_path()
        self.step_s = world.step_s
        self._centres_m = np.asarray(self.reference.lane_offsets_m, dtype=float)
        self._speeds_mps: deque[float] = deque(maxlen=max(2, round(DECEL_WINDOW_S / self.step_s) + 1))
        self._offsets_m: deque[float] = deque(maxlen=max(2, round(LATERAL_SPEED_WINDOW_S / self.step_s) + 1))
        self._lane: int | None = None
        self._lane_changed_s = -math.inf
        self._inside: dict[int, bool] = {}
        self._entries: dict[int, tuple[float, float, float]] = {}  # id -> (time, gap, closing speed)
        self.off_centre_m = 0.0

    def update(self, time_s: float, ego: EgoState, arrays: VehicleArrays) -> None:
        s_m, d_m = self.reference.project(ego.x_m, ego.y_m)
        self._speeds_mps.append(ego.v_mps)
        self._offsets_m.append(d_m)
        distances_m = np.abs(self._centres_m - d_m)
        self.off_centre_m = float(distances_m.min())
        lane = int(np.argmin(distances_m))
        changed = self._lane is not None and lane != self._lane
        if changed:
            self._lane_changed_s = time_s
        self._lane = lane
        # when the ego changes lane the vehicles of its new lane did not cut in
        self._watch_entries(time_s, ego, s_m, float(self._centres_m[lane]), arrays, record=not changed)

    def _watch_entries(self, time_s: float, ego: EgoState, s_m: float, centre_m: float, arrays: VehicleArrays,
                       record: bool) -> None:
        heading = self.reference.point_at(s_m)[2]
        near = np.flatnonzero((arrays.agent_id != EGO_AGENT_ID)
                              & (np.hypot(arrays.x_m - ego.x_m, arrays.y_m - ego.y_m) < WATCH_RANGE_M))
        for i in near:
            agent_id = int(arrays.agent_id[i])
            s_a, d_a = self.reference.project(float(arrays.x_m[i]), float(arrays.y_m[i]))
            inside = abs(d_a - centre_m) < 0.5 * (self.reference.lane_width_m + arrays.width_m[i]) - INTRUSION_M
            if record and inside and self._inside.get(agent_id) is False:
                gap_m = s_a - s_m - 0.5 * (arrays.length_m[i] + ego.length_m)
                closing_mps = ego.v_mps - arrays.v_mps[i] * math.cos(arrays.yaw_rad[i] - heading)
                self._entries[agent_id] = (time_s, float(gap_m), float(closing_mps))
            self._inside[agent_id] = bool(inside)

    def context(self, time_s: float, ego: EgoState, arrays: VehicleArrays, other_id: int) -> ImpactContext | None:
        """The judgement's inputs for a collision with ``other_id`` now (None if it is gone)."""
        index = np.flatnonzero(arrays.agent_id == other_id)
        if not index.size:
            return None
        i = int(index[0])
        other = Body(float(arrays.x_m[i]), float(arrays.y_m[i]), float(arrays.yaw_rad[i]), float(arrays.v_mps[i]),
                     float(arrays.length_m[i]), float(arrays.width_m[i]))
        d_m = self._offsets_m[-1]
        toward = float(np.sign(self.reference.project(other.x_m, other.y_m)[1] - d_m))
        lateral_mps = (self._offsets_m[-1] - self._offsets_m[0]) / (max(len(self._offsets_m) - 1, 1) * self.step_s)
        centre_m = float(self._centres_m[self._lane if self._lane is not None else 0])
        decel_mps2 = float(max(0.0, -np.diff(self._speeds_mps).min() / self.step_s)) if len(self._speeds_mps) > 1 \
            else 0.0
        entry = self._entries.get(other_id)
        cutin = CutIn(time_s - entry[0], entry[1], entry[2]) if entry else None
        body = Body(ego.x_m, ego.y_m, ego.yaw_rad, ego.v_mps, ego.length_m, ego.width_m)
        return ImpactContext(body, other, decel_mps2, toward * lateral_mps, toward * (d_m - centre_m),
                             time_s - self._lane_changed_s, cutin)


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
        self._lanes = LaneWatch(world)
        self._closest_m = math.inf
        self.closest_frame = -1  # the frame of the closest approach: the one worth a still picture

    def set_forecasts(self, forecasts: ForecastSet) -> None:
        self._forecasts = forecasts

    def record(self, plan: Plan | None) -> None:
        world, m = self.world, self.metrics
        ego, agents = world.ego(), world.agents()
        events = world.events()
        self._lanes.update(world.time_s, ego, world.vehicle_arrays())
        if self._lanes.off_centre_m > OFF_CENTRE_M:
            m.off_lane_s += world.step_s
        if not m.collision and any(e.kind == "collision" for e in events):
            self._judge_collision(ego)
        m.collision = m.collision or any(e.kind == "collision" for e in events)
        if not m.goal_reached and any(e.kind == "goal_reached" for e in events):
            m.goal_reached, m.time_to_goal_s = True, world.time_s
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

    def _judge_collision(self, ego: EgoState) -> None:
        """Fault of the first collision; with several vehicles at once, at fault if any was the ego's fault."""
        arrays = self.world.vehicle_arrays()
        contexts = [self._lanes.context(self.world.time_s, ego, arrays, c.other_id)
                    for c in self.world.check_collisions()]
        verdicts = sorted((attribute(c) for c in contexts if c is not None), key=lambda a: not a.at_fault)
        if not verdicts:  # SUMO reported a vehicle that is already gone: not judged, counted against the ego
            self.metrics.at_fault, self.metrics.fault_reason = True, "other vehicle gone: not judged"
            return
        self.metrics.at_fault = verdicts[0].at_fault
        self.metrics.collision_side = verdicts[0].side.value
        self.metrics.fault_reason = verdicts[0].reason

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
