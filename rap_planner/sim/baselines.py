"""A rule-based ego for the closed-loop baseline: IDM along the lane plus a MOBIL-like lane change.

It sees what the stack sees (the same noisy tracked agents, stop lines as standing walls) and
drives the ego through ``SumoWorld.apply_ego_state``, so its outcome on the same seeds and scripted
events says what a textbook car-following driver achieves where the risk-aware planner is judged.
IDM after Treiber et al. (2000), MOBIL after Kesting et al. (2007); plain numpy, no SUMO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rap_planner.core.types import EgoState, TrackedAgent
from rap_planner.sim.geometry import ReferencePath

SEEN_RANGE_M = 150.0  # agents farther than this from the ego are ignored
LANE_MARGIN_M = 0.5  # an agent blocks a lane when its body comes this close to the ego's body placed there
CENTRED_M = 0.2  # a lane change is over when the ego is this close to the target lane centre
MIN_GAP_M = 0.1  # gaps below this count as contact (IDM divides by the gap)


@dataclass(frozen=True)
class IdmParams:
    """Intelligent Driver Model parameters (typical passenger-car values)."""

    desired_speed_mps: float = 25.0
    max_accel_mps2: float = 1.5
    comfort_decel_mps2: float = 2.0
    headway_s: float = 1.5
    standstill_gap_m: float = 2.0
    max_decel_mps2: float = 8.0  # the command saturates here (a car's physical braking)
    exponent: float = 4.0


@dataclass(frozen=True)
class MobilParams:
    """Lane-change rule: change when it gains acceleration and the new follower need not brake hard."""

    politeness: float = 0.3
    threshold_mps2: float = 0.2
    safe_decel_mps2: float = 3.0
    min_speed_mps: float = 3.0
    lateral_speed_mps: float = 1.2  # a 3.5 m lane change takes about 3 s
    cooldown_s: float = 4.0  # after one lane change, no other for this long


@dataclass(frozen=True)
class LaneAgent:
    """An agent in the reference path's Frenet frame: arc length, lateral offset, speed along the path."""

    s_m: float
    d_m: float
    v_mps: float
    length_m: float
    width_m: float


def idm_accel(v_mps: float, gap_m: float, leader_v_mps: float, params: IdmParams,
              desired_speed_mps: float | None = None) -> float:
    """IDM acceleration behind a leader ``gap_m`` ahead (bumper to bumper); ``gap_m`` inf: free road."""
    v0 = max(desired_speed_mps if desired_speed_mps is not None else params.desired_speed_mps, 0.1)
    free = 1.0 - (max(v_mps, 0.0) / v0) ** params.exponent
    interaction = 0.0
    if math.isfinite(gap_m):
        closing = v_mps - leader_v_mps
        wanted_m = params.standstill_gap_m + max(
            0.0, v_mps * params.headway_s + v_mps * closing / (2.0 * math.sqrt(params.max_accel_mps2
                                                                               * params.comfort_decel_mps2)))
        interaction = (wanted_m / max(gap_m, MIN_GAP_M)) ** 2
    return float(np.clip(params.max_accel_mps2 * (free - interaction), -params.max_decel_mps2, params.max_accel_mps2))


def blocks(agent: LaneAgent, lane_d_m: float, ego_width_m: float) -> bool:
    """True when the agent's body overlaps the ego's body (plus a margin) placed at ``lane_d_m``."""
    return abs(agent.d_m - lane_d_m) < 0.5 * (agent.width_m + ego_width_m) + LANE_MARGIN_M


def neighbours(agents: list[LaneAgent], s_m: float, lane_d_m: float, ego_length_m: float,
               ego_width_m: float) -> tuple[tuple[LaneAgent, float] | None, tuple[LaneAgent, float] | None]:
    """(leader, gap) and (follower, gap) of an ego at ``(s_m, lane_d_m)``; gaps bumper to bumper."""
    leader: tuple[LaneAgent, float] | None = None
    follower: tuple[LaneAgent, float] | None = None
    for agent in agents:
        if not blocks(agent, lane_d_m, ego_width_m):
            continue
        gap = abs(agent.s_m - s_m) - 0.5 * (agent.length_m + ego_length_m)
        if agent.s_m >= s_m and (leader is None or gap < leader[1]):
            leader = (agent, gap)
        elif agent.s_m < s_m and (follower is None or gap < follower[1]):
            follower = (agent, gap)
    return leader, follower


class IdmMobilDriver:
    """Drives the ego along the reference path's lanes: IDM longitudinally, MOBIL for lane changes."""

    def __init__(self, reference: ReferencePath, step_s: float, idm: IdmParams | None = None,
                 mobil: MobilParams | None = None) -> None:
        self.reference = reference
        self.step_s = step_s
        self.idm = idm or IdmParams()
        self.mobil = mobil or MobilParams()
        self._lanes_m = sorted(reference.lane_offsets_m)
        self.target_d_m: float | None = None
        self._last_change_s = -math.inf

    def to_frenet(self, agents: list[TrackedAgent], ego: EgoState) -> list[LaneAgent]:
        """Agents within ``SEEN_RANGE_M`` along the path, in the reference path's frame (the same
        range in every lane: a lane must not look free only because its cars are a little farther)."""
        s_ego, _ = self.reference.project(ego.x_m, ego.y_m)
        out = []
        for a in agents:
            if math.hypot(a.x_m - ego.x_m, a.y_m - ego.y_m) > 2.0 * SEEN_RANGE_M:
                continue
            s, d = self.reference.project(a.x_m, a.y_m)
            if abs(s - s_ego) > SEEN_RANGE_M:
                continue
            heading = self.reference.point_at(s)[2]
            v = a.vx_mps * math.cos(heading) + a.vy_mps * math.sin(heading)
            out.append(LaneAgent(s, d, v, a.length_m, a.width_m))
        return out

    def accel_in_lane(self, agents: list[LaneAgent], s_m: float, lane_d_m: float, v_mps: float,
                      ego: EgoState) -> float:
        leader, _ = neighbours(agents, s_m, lane_d_m, ego.length_m, ego.width_m)
        if leader is None:
            return idm_accel(v_mps, math.inf, 0.0, self.idm)
        return idm_accel(v_mps, leader[1], leader[0].v_mps, self.idm)

    def choose_lane(self, agents: list[LaneAgent], s_m: float, current_d_m: float, ego: EgoState) -> float:
        """MOBIL: the adjacent lane with the largest incentive above the threshold, if its follower stays safe."""
        a_current = self.accel_in_lane(agents, s_m, current_d_m, ego.v_mps, ego)
        index = self._lanes_m.index(current_d_m)
        best_d, best_gain = current_d_m, self.mobil.threshold_mps2
        for j in (index - 1, index + 1):
            if not 0 <= j < len(self._lanes_m):
                continue
            lane_d = self._lanes_m[j]
            leader, follower = neighbours(agents, s_m, lane_d, ego.length_m, ego.width_m)
            if leader is not None and leader[1] < self.idm.standstill_gap_m:
                continue
            a_new = self.accel_in_lane(agents, s_m, lane_d, ego.v_mps, ego)
            follower_cost = 0.0
            if follower is not None:
                agent, gap = follower
                if gap < self.idm.standstill_gap_m:
                    continue
                behind_ego = idm_accel(agent.v_mps, gap, ego.v_mps, self.idm, max(agent.v_mps, 1.0))
                if behind_ego < -self.mobil.safe_decel_mps2:
                    continue
                lead_v, lead_gap = (leader[0].v_mps, leader[1] + gap + ego.length_m) if leader else (0.0, math.inf)
                before = idm_accel(agent.v_mps, lead_gap, lead_v, self.idm, max(agent.v_mps, 1.0))
                follower_cost = before - behind_ego
            gain = a_new - a_current - self.mobil.politeness * follower_cost
            if gain > best_gain:
                best_d, best_gain = lane_d, gain
        return best_d

    def step(self, ego: EgoState, agents: list[TrackedAgent]) -> tuple[float, float, float, float]:
        """The ego's pose (x, y, yaw, v) one step ahead."""
        lanes = self.to_frenet(agents, ego)
        s_m, d_m = self.reference.project(ego.x_m, ego.y_m)
        if self.target_d_m is None:
            self.target_d_m = min(self._lanes_m, key=lambda c: abs(c - d_m))
        settled = abs(d_m - self.target_d_m) < CENTRED_M
        if (settled and ego.v_mps > self.mobil.min_speed_mps
                and ego.stamp_s - self._last_change_s > self.mobil.cooldown_s):
            target = self.choose_lane(lanes, s_m, self.target_d_m, ego)
            if target != self.target_d_m:
                self.target_d_m, self._last_change_s = target, ego.stamp_s
        # while changing lanes, keep a safe gap in both the lane it leaves and the one it enters
        accel = min(self.accel_in_lane(lanes, s_m, d_m, ego.v_mps, ego),
                    self.accel_in_lane(lanes, s_m, self.target_d_m, ego.v_mps, ego))
        return self.advance(s_m, d_m, ego.v_mps, accel)

    def advance(self, s_m: float, d_m: float, v_mps: float, accel_mps2: float) -> tuple[float, float, float, float]:
        """Integrates one step (no reversing) and converts back to a world pose."""
        dt = self.step_s
        v_next = v_mps + accel_mps2 * dt
        if v_next < 0.0:
            ds, v_next = v_mps**2 / (2.0 * max(-accel_mps2, 1e-9)), 0.0
        else:
            ds = 0.5 * (v_mps + v_next) * dt
        lateral_mps = min(self.mobil.lateral_speed_mps, 0.5 * v_mps)
        target_d_m = self.target_d_m if self.target_d_m is not None else d_m
        dd = float(np.clip(target_d_m - d_m, -lateral_mps * dt, lateral_mps * dt))
        x, y, heading = self.reference.point_at(s_m + ds)
        d_next = d_m + dd
        yaw = heading + math.atan2(dd, max(ds, 1e-6)) if ds > 1e-6 else heading
        return x - math.sin(heading) * d_next, y + math.cos(heading) * d_next, yaw, v_next
