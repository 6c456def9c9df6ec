"""A safety layer after ranking: an RSS-style longitudinal check of every candidate against its leaders.

Risk ranks candidates by an expected-ish cost; it can still pick a candidate that accelerates into a
braking leader when the cost of braking is overstated. This layer does not weigh anything: a candidate
fails when, at some step of its horizon, against some leader in a lane it touches,

* the gap (bumper to bumper, along the path) is below RSS's minimum safe distance (Shalev-Shwartz et
  al., 2017): ``v_r rho + a_acc rho^2 / 2 + (v_r + rho a_acc)^2 / (2 b_min) - v_f^2 / (2 b_max)``,
  and the candidate is not responding properly (braking by at least ``b_min``, as hard as the jerk
  limit allows, or standing); a gap the ego opens by moving into a lane must be safe outright;
* or it accelerates while closing on a braking leader.

Leaders are the forecast's mode means (modes of weight >= ``min_mode_weight`` and each agent's likeliest
one) that move along the path, are ahead of the ego and occupy a lane the ego's footprint touches. As in
RSS, a vehicle that cuts into the ego's lane is responsible for that gap: an agent counts in the lanes it
occupies now, and its predicted cut-ins are left to the risk ranking (the plan after the cut-in will
respond to it). Crossing and oncoming traffic is likewise the ranking's.

Cost: the check factorises like the cost module. Who is a leader depends on the lateral profile only, and
whether a leader's gap is broken on the longitudinal profile only, so (L, columns) @ (columns, M) boolean
products over the (leader, step) columns give every candidate's verdict at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from rap_planner.core.array_types import BoolArray, FloatArray
from rap_planner.core.candidates import Candidates, VehicleLimits, compose
from rap_planner.core.parameters import PLANNER
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.scenarios import resample_in_time
from rap_planner.core.types import ForecastSet

_ALIGNED_BELOW_MPS = 0.5  # slower agents are taken as aligned with the road (a forecast carries no heading)
_LANE_TOUCH_M = 0.1  # a footprint touches a lane when it reaches this far into it (tracking jitter is not a lane)
_ACCEL_TOL_MPS2 = 0.05  # accelerations within this of a bound meet it
_STANDING_MPS = 0.1  # an ego slower than this that does not accelerate is standing: always a proper response
_MIN_CENTRING_M = 10.0  # the in-lane stop's lateral move is spread over at least this much travel


@dataclass(frozen=True)
class RssParams:
    """RSS's assumptions about the ego and its leaders (units in the names)."""

    response_time_s: float = PLANNER.config_default("safety.response_time_s", float)
    ego_max_accel_mps2: float = PLANNER.config_default("safety.ego_max_accel_mps2", float)  # during the response
    ego_min_brake_mps2: float = PLANNER.config_default("safety.ego_min_brake_mps2", float)  # the proper response
    leader_max_brake_mps2: float = PLANNER.config_default("safety.leader_max_brake_mps2", float)
    braking_leader_mps2: float = 1.0  # a leader decelerating harder than this is braking
    follow_headway_s: float = 3.0  # the no-acceleration rule holds for braking leaders closer than this headway
    min_mode_weight: float = 0.05  # lighter modes are not leaders (each agent's likeliest mode always is)

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"safety.{f.name} must be finite and >= 0, got {value!r}")
        for name in ("ego_min_brake_mps2", "leader_max_brake_mps2"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"safety.{name} must be positive")
        if self.min_mode_weight > 1.0:
            raise ValueError(f"safety.min_mode_weight must be <= 1, got {self.min_mode_weight!r}")

    def ego_reach_m(self, v_mps: np.ndarray) -> np.ndarray:
        """The rear car's part of the RSS distance: response at full accel, then minimum braking."""
        rho = self.response_time_s
        v_after = v_mps + rho * self.ego_max_accel_mps2
        reach: np.ndarray = v_mps * rho + 0.5 * self.ego_max_accel_mps2 * rho**2 + v_after**2 / (
            2.0 * self.ego_min_brake_mps2)
        return reach

    def leader_stop_m(self, v_mps: np.ndarray) -> np.ndarray:
        """The front car's braking distance at its maximum braking."""
        stop: np.ndarray = v_mps**2 / (2.0 * self.leader_max_brake_mps2)
        return stop

    def min_gap_m(self, v_rear_mps: np.ndarray, v_front_mps: np.ndarray) -> np.ndarray:
        """RSS minimum safe longitudinal distance (same direction), never negative."""
        gap: np.ndarray = np.maximum(self.ego_reach_m(v_rear_mps) - self.leader_stop_m(v_front_mps), 0.0)
        return gap


@dataclass
class Leaders:
    """Possible leaders: forecast mode means in the Frenet frame, (J, T + 1) on the candidates' time grid."""

    s_m: FloatArray
    d_m: FloatArray
    v_mps: FloatArray  # along the path, never negative
    a_mps2: FloatArray  # along the path
    half_length_m: FloatArray  # Frenet bounding box half extents
    half_width_m: FloatArray
    aligned: BoolArray  # moving along the path (not crossing, not oncoming)

    @property
    def num(self) -> int:
        return int(self.s_m.shape[0])


def leader_tracks(forecasts: ForecastSet, reference: ReferencePath, times_s: np.ndarray,
                  params: RssParams) -> Leaders:
    """The mode means that can lead the ego, at absolute ``times_s`` (T + 1,), starting now."""
    steps = len(times_s)
    if not forecasts.agents:
        empty = np.zeros((0, steps))
        return Leaders(empty, empty, empty, empty, empty, empty, np.zeros((0, steps), bool))
    means, length, width = _kept_modes(forecasts, params.min_mode_weight)
    grid_start = forecasts.stamp_s + forecasts.dt_s
    xy = resample_in_time(means, grid_start, forecasts.dt_s, np.asarray(times_s))
    s, d = reference.trajectories_to_frenet(xy[..., 0], xy[..., 1])
    dt = float(times_s[1] - times_s[0])
    v_s, v_d = np.gradient(s, dt, axis=1), np.gradient(d, dt, axis=1)
    speed = np.hypot(v_s, v_d)
    moving = speed > _ALIGNED_BELOW_MPS
    inv_speed = np.where(moving, 1.0 / np.maximum(speed, _ALIGNED_BELOW_MPS), 0.0)
    cos, sin = np.where(moving, np.abs(v_s) * inv_speed, 1.0), np.abs(v_d) * inv_speed
    return Leaders(
        s_m=s, d_m=d, v_mps=np.maximum(v_s, 0.0), a_mps2=np.gradient(v_s, dt, axis=1),
        half_length_m=0.5 * (length * cos + width * sin), half_width_m=0.5 * (length * sin + width * cos),
        aligned=~moving | (v_s >= np.abs(v_d)),
    )


def _kept_modes(forecasts: ForecastSet, min_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means (J, T, 2) of the modes weighing at least ``min_weight`` or an agent's likeliest, lengths and
    widths (J, 1); agents of one mode count are stacked at once (a per-agent loop costs more than the check)."""
    agents = forecasts.agents
    if len({np.shape(a.means_m) for a in agents}) == 1:
        weights = np.stack([np.asarray(a.weights, dtype=np.float64) for a in agents])
        means = np.stack([np.asarray(a.means_m, dtype=np.float64) for a in agents])
    else:  # pad to the most modes with modes of weight -1, which are never kept
        modes = max(len(a.weights) for a in agents)
        weights = np.full((len(agents), modes), -1.0)
        means = np.zeros((len(agents), modes, forecasts.num_steps, 2))
        for n, a in enumerate(agents):
            weights[n, :len(a.weights)] = a.weights
            means[n, :len(a.weights)] = a.means_m
    keep = (weights >= min_weight) | (np.arange(weights.shape[1]) == np.argmax(weights, axis=1)[:, None])
    owner = np.nonzero(keep)[0]
    length = np.array([a.length_m for a in agents])[owner, None]
    width = np.array([a.width_m for a in agents])[owner, None]
    return means[keep], length, width


def lane_bits(reference: ReferencePath, d_m: np.ndarray, half_width_m: np.ndarray | float) -> np.ndarray:
    """Bit i set where a footprint centred at ``d_m`` reaches into lane i (int64, same shape)."""
    half_lane = 0.5 * reference.lane_width_m
    bits = np.zeros(np.shape(d_m), np.int64)
    for i, centre in enumerate(reference.lane_offsets_m):
        touches = (d_m + half_width_m > centre - half_lane + _LANE_TOUCH_M) & (
            d_m - half_width_m < centre + half_lane - _LANE_TOUCH_M)
        bits |= touches.astype(np.int64) << i
    return bits


def braking_accel(cands: Candidates) -> np.ndarray:
    """(T + 1,) the hard-braking profile's accel: the most braking the jerk limit allows at each step."""
    accel: np.ndarray = cands.lon_a_mps2[cands.longitudinal_index[cands.braking_index]]
    return accel


class RssCheck:
    """One cycle's leaders and ego; says which (lateral, longitudinal) profile pairs keep the RSS rules."""

    def __init__(self, leaders: Leaders, reference: ReferencePath, ego_length_m: float, ego_width_m: float,
                 brake_accel_mps2: np.ndarray, params: RssParams) -> None:
        self.reference = reference
        self.ego_half_length_m = 0.5 * ego_length_m
        self.ego_half_width_m = 0.5 * ego_width_m
        self.brake_accel_mps2 = brake_accel_mps2
        self.params = params
        bits = lane_bits(reference, leaders.d_m, leaders.half_width_m)
        self._leader_bits = np.where(leaders.aligned, bits & bits[:, :1], 0)  # lanes it is in now and still
        self.leaders = leaders

    def candidates(self, cands: Candidates) -> BoolArray:
        """(C,) whether each candidate passes."""
        passes = self.profiles(cands.lon_s_m, cands.lon_v_mps, cands.lon_a_mps2, cands.lat_d_m)
        safe: BoolArray = passes[cands.lateral_index, cands.longitudinal_index]
        return safe

    def profiles(self, lon_s_m: np.ndarray, lon_v_mps: np.ndarray, lon_a_mps2: np.ndarray,
                 lat_d_m: np.ndarray) -> BoolArray:
        """(L, M) whether each lateral (L, T + 1) x longitudinal (M, T + 1) profile pair passes."""
        p, led, num_l = self.params, self.leaders, len(lat_d_m)
        ego_reach = p.ego_reach_m(lon_v_mps)  # (M, T + 1)
        ego_front = lon_s_m + self.ego_half_length_m
        farthest = (ego_front + np.maximum(ego_reach, lon_v_mps * p.follow_headway_s)).max(axis=0)
        near = (led.s_m > lon_s_m.min(axis=0)) & (led.s_m - led.half_length_m < farthest)  # (J, T + 1)
        ego_bits = lane_bits(self.reference, lat_d_m, self.ego_half_width_m)  # (L, T + 1)
        leader_bits = np.where(near, self._leader_bits, 0)[None]
        shared = ((ego_bits[:, None, :] & leader_bits) != 0).reshape(num_l, -1)  # (L, J (T + 1))
        cols = np.flatnonzero(shared.any(axis=0))
        if cols.size == 0:
            return np.ones((num_l, len(lon_s_m)), bool)
        inherited = ((ego_bits[:, None, :] & leader_bits & ego_bits[:, :1, None]) != 0).reshape(num_l, -1)[:, cols]
        shared = shared[:, cols]  # inherited: a lane the ego was in at the start too
        lead, step = np.unravel_index(cols, led.s_m.shape)
        any_rule, gap_rule = self._broken(lon_s_m, lon_v_mps, lon_a_mps2, ego_front, ego_reach, lead, step)
        failed = inherited.astype(np.float32) @ any_rule.astype(np.float32).T
        failed += (shared & ~inherited).astype(np.float32) @ gap_rule.astype(np.float32).T
        passes: BoolArray = failed == 0.0
        return passes

    def _broken(self, lon_s_m: np.ndarray, lon_v_mps: np.ndarray, lon_a_mps2: np.ndarray, ego_front_m: np.ndarray,
                ego_reach_m: np.ndarray, lead: np.ndarray, step: np.ndarray) -> tuple[BoolArray, BoolArray]:
        """(M, columns) rules broken at each (leader, step) column: (any rule, the gap rule alone).

        The first is for leaders in a lane the ego was already in (a proper response excuses a short gap,
        braking as hard as it can excuses contact); the second for a lane the ego moves into (its own lane
        change must leave a safe gap).
        """
        p, led = self.params, self.leaders
        brake = self.brake_accel_mps2
        standing = (lon_v_mps < _STANDING_MPS) & (lon_a_mps2 <= _ACCEL_TOL_MPS2)
        responding = (lon_a_mps2 <= np.maximum(-p.ego_min_brake_mps2, brake) + _ACCEL_TOL_MPS2) | standing
        braking_hard = (lon_a_mps2 <= brake + _ACCEL_TOL_MPS2) | standing
        accelerating = lon_a_mps2 > np.maximum(0.0, brake) + _ACCEL_TOL_MPS2
        lead_s, lead_v = led.s_m[lead, step], led.v_mps[lead, step]
        ego_v = np.take(lon_v_mps, step, axis=1)
        ahead = lead_s > np.take(lon_s_m, step, axis=1)
        gap = (lead_s - led.half_length_m[lead, step]) - np.take(ego_front_m, step, axis=1)
        short = ahead & (gap < np.maximum(np.take(ego_reach_m, step, axis=1) - p.leader_stop_m(lead_v), 0.0))
        braking = led.a_mps2[lead, step] < -p.braking_leader_mps2
        closing = ahead & braking & (ego_v > lead_v) & (gap < ego_v * p.follow_headway_s)
        contact = ahead & (gap < 0.0)
        any_rule: BoolArray = (short & ~np.take(responding, step, axis=1)) | (
            contact & ~np.take(braking_hard, step, axis=1)) | (closing & np.take(accelerating, step, axis=1))
        return any_rule, short


def safe_choice(safe: BoolArray, risks: np.ndarray, cands: Candidates) -> int | None:
    """The lowest-risk safe candidate that drives on (not the hard-braking profile: stopping is
    ``in_lane_stop``'s, which steers to the lane centre), or None."""
    braking_row = cands.longitudinal_index[cands.braking_index]
    usable = safe & (cands.longitudinal_index != braking_row)
    return int(np.argmin(np.where(usable, risks, np.inf))) if usable.any() else None


def in_lane_stop(cands: Candidates, reference: ReferencePath, d_rate0_mps: float, limits: VehicleLimits
                 ) -> Candidates:
    """Hard braking that steers to the nearest lane centre (one candidate), not holding a lateral offset.

    The lateral move is a quintic in travelled distance, not time, so it ends with the car (no steering
    on the spot) and its heading error stays bounded; it starts with the ego's current lateral slope.
    """
    row = cands.longitudinal_index[cands.braking_index]
    s_abs, v, a = cands.lon_s_m[row], cands.lon_v_mps[row], cands.lon_a_mps2[row]
    d0 = float(cands.lat_d_m[0, 0])  # lateral row 0 holds the current offset
    delta = reference.nearest_lane_offset(d0) - d0
    travel = s_abs - s_abs[0]
    length = max(float(travel[-1]), _MIN_CENTRING_M)
    max_slope = math.tan(limits.max_heading_error_rad)
    slope0 = float(np.clip(d_rate0_mps / max(float(v[0]), _ALIGNED_BELOW_MPS), -max_slope, max_slope))
    u = np.clip(travel / length, 0.0, 1.0)
    d = d0 + delta * (10 * u**3 - 15 * u**4 + 6 * u**5) + slope0 * length * (u - 6 * u**3 + 8 * u**4 - 3 * u**5)
    dd_ds = delta * (30 * u**2 - 60 * u**3 + 30 * u**4) / length + slope0 * (1 - 18 * u**2 + 32 * u**3 - 15 * u**4)
    d2d_ds2 = (delta * (60 * u - 180 * u**2 + 120 * u**3) / length**2
               + slope0 * (-36 * u + 96 * u**2 - 60 * u**3) / length)
    lat = (d[None], (dd_ds * v)[None], (d2d_ds2 * v**2 + dd_ds * a)[None])
    return compose(reference, float(s_abs[0]), (travel[None], v[None], a[None]), lat, cands.dt_s, limits,
                   cands.ego_accel_mps2, keep=(0, 0))
