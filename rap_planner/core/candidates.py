"""Candidate ego trajectories: lateral profiles x longitudinal profiles, built in the Frenet frame.

A candidate is one lateral profile d(t) (hold the current offset, or a quintic move to a lane centre
plus a nudge over a given duration) combined with one longitudinal profile s(t) (jerk-limited
tracking of a target speed at an acceleration level, optionally going back to the cruise speed
after a while, which is how a driver yields; or hard braking). Keeping the candidate set a
full grid (lateral x longitudinal) is what lets the cost module factorise its pairwise terms; the
infeasible combinations are dropped afterwards, except the braking-in-lane candidate, which is
always kept as the last resort.

Speeds and accelerations are along the path (s-dot, s-ddot); time t_k = k dt, k = 0..T, row 0 is
the current state. The acceleration a_k holds over [t_k, t_k+1) (the last row repeats a_T-1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rap_planner.core.array_types import BoolArray, FloatArray
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.types import EgoState

_MIN_SPEED_FOR_CURVATURE_MPS = 0.5  # below this the path curvature of a standing car is not checked
_SPEED_EPS_MPS = 1e-6


@dataclass(frozen=True)
class VehicleLimits:
    """What the ego can do; candidates beyond these are dropped."""

    max_accel_mps2: float = 2.5
    max_decel_mps2: float = 7.0  # hard braking
    max_jerk_mps3: float = 10.0
    max_lat_accel_mps2: float = 4.0
    max_curvature_1pm: float = 0.25
    max_heading_error_rad: float = 0.6  # heading relative to the path (no crabbing)
    max_speed_mps: float = 40.0

    def validate(self) -> None:
        for name, value in vars(self).items():
            if not math.isfinite(value) or value <= 0.0:
                raise ValueError(f"limits.{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class CandidateConfig:
    """Knobs of the candidate grid: C = lateral x longitudinal before dropping infeasible ones.

    Lateral: 1 (hold) + lanes x ``lane_change_durations_s`` x ``lateral_nudges_m``.
    Longitudinal: ``num_target_speeds`` x ``accel_levels_mps2`` x (1 + ``resume_after_s``) + 1 (hard braking).
    """

    horizon_s: float = 5.0
    dt_s: float = 0.2
    num_target_speeds: int = 8
    accel_levels_mps2: tuple[float, ...] = (1.5, 4.0)
    resume_after_s: tuple[float, ...] = (2.5,)  # times at which a profile goes back to the cruise speed
    speed_gain_1ps: float = 1.0  # desired accel = gain * (target speed - speed), then clipped
    max_target_speed_mps: float = math.inf  # fastest target speed, also the one resumed after a dip
    lane_change_durations_s: tuple[float, ...] = (3.0, 5.0)
    lateral_nudges_m: tuple[float, ...] = (-0.5, 0.0, 0.5)
    max_lane_changes: int = 1
    limits: VehicleLimits = field(default_factory=VehicleLimits)

    @property
    def num_steps(self) -> int:
        return int(round(self.horizon_s / self.dt_s))


@dataclass
class Candidates:
    """C candidate trajectories on one time grid, arrays (C, T + 1) unless noted."""

    times_s: np.ndarray  # (T + 1,) relative to the plan stamp
    s_m: np.ndarray
    d_m: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    yaw_rad: np.ndarray
    v_mps: np.ndarray  # along the path
    a_mps2: np.ndarray
    d_accel_mps2: np.ndarray  # lateral acceleration in the Frenet frame (d-ddot)
    longitudinal_index: np.ndarray  # (C,) row of the longitudinal profile arrays
    lateral_index: np.ndarray  # (C,) row of the lateral profile arrays
    lon_s_m: np.ndarray  # (M, T + 1) longitudinal profiles (absolute s)
    lon_v_mps: np.ndarray  # (M, T + 1)
    lon_a_mps2: np.ndarray  # (M, T + 1)
    lat_d_m: np.ndarray  # (L, T + 1) lateral profiles
    lat_rate_mps: np.ndarray  # (L, T + 1) d-dot
    lat_accel_mps2: np.ndarray  # (L, T + 1) d-ddot
    braking_index: int  # candidate index of braking in the current lane
    ego_accel_mps2: float  # a_-1, the (clipped) current acceleration the jerk is measured from

    @property
    def num(self) -> int:
        return len(self.longitudinal_index)

    @property
    def dt_s(self) -> float:
        return float(self.times_s[1] - self.times_s[0])

    def states(self, index: int) -> np.ndarray:
        """(T + 1, 5) rows of x, y, yaw, v, a of one candidate (the Plan layout)."""
        return np.stack(
            [self.x_m[index], self.y_m[index], self.yaw_rad[index], self.v_mps[index], self.a_mps2[index]], axis=1
        )


def integrate_accel(v0_mps: float, accel_mps2: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Progress, speed and the applied accel of accel rows (..., T), never reversing.

    An accel that would drive the speed below zero is cut so the car stops exactly at the step's
    end; this keeps s, v and a exactly consistent with piecewise-constant accelerations, which the
    refinement's linear model relies on. Returns (s (..., T + 1) from 0, v (..., T + 1), a (..., T + 1)).
    """
    accel = np.asarray(accel_mps2, dtype=np.float64)
    steps = accel.shape[-1]
    s = np.zeros(accel.shape[:-1] + (steps + 1,))
    v = np.empty_like(s)
    a = np.empty_like(s)
    v[..., 0] = v0_mps
    for k in range(steps):
        a_k = np.maximum(accel[..., k], -v[..., k] / dt_s)
        a[..., k] = a_k
        s[..., k + 1] = s[..., k] + v[..., k] * dt_s + 0.5 * a_k * dt_s**2
        v[..., k + 1] = np.maximum(v[..., k] + a_k * dt_s, 0.0)
    a[..., steps] = a[..., steps - 1]
    return s, v, a


def longitudinal_profiles(
    v0_mps: float, a0_mps2: float, speed_cap_mps: float, config: CandidateConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s from 0, v, a), each (M, T + 1); the last row is hard braking.

    Rows track target speeds linspace(0, cap) at each accel level, each also in variants that go
    back to the cap (the cruise speed) at ``resume_after_s``; the jerk limit is applied step by step
    (vectorised over rows, a loop over the T time steps only).
    """
    lim = config.limits
    dt, steps = config.dt_s, config.num_steps
    targets = np.linspace(0.0, speed_cap_mps, config.num_target_speeds)
    levels = np.asarray(config.accel_levels_mps2, dtype=np.float64)
    resume = np.asarray((math.inf,) + tuple(config.resume_after_s), dtype=np.float64)
    grid_t, grid_l, grid_r = (g.reshape(-1) for g in np.meshgrid(targets, levels, resume, indexing="ij"))
    v_target = np.append(grid_t, 0.0)
    resume_s = np.append(grid_r, math.inf)
    accel_cap = np.append(np.minimum(grid_l, lim.max_accel_mps2), 0.0)
    decel_cap = np.append(np.minimum(grid_l, lim.max_decel_mps2), lim.max_decel_mps2)
    braking = np.zeros(len(v_target), dtype=bool)
    braking[-1] = True

    jerk_step = lim.max_jerk_mps3 * dt
    v = np.full(len(v_target), float(v0_mps))
    a_prev = np.full(len(v_target), float(np.clip(a0_mps2, -lim.max_decel_mps2, lim.max_accel_mps2)))
    accel = np.empty((len(v_target), steps))
    for k in range(steps):
        goal = np.where(k * dt >= resume_s, speed_cap_mps, v_target)
        desired = np.minimum(np.maximum(config.speed_gain_1ps * (goal - v), -decel_cap), accel_cap)
        desired[braking] = -lim.max_decel_mps2
        a_k = a_prev + np.minimum(np.maximum(desired - a_prev, -jerk_step), jerk_step)
        a_k = np.minimum(a_k, (lim.max_speed_mps - v) / dt)
        a_k = np.maximum(a_k, -v / dt)  # stop, do not reverse
        accel[:, k] = a_k
        v = v + a_k * dt
        a_prev = a_k
    return integrate_accel(v0_mps, accel, dt)


def _quintic(
    d0: float, rate0: float, targets: FloatArray, durations: FloatArray, t: np.ndarray, acc0: float = 0.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Quintic moves from (d0, rate0, acc0) to (target, 0, 0) within ``duration``, then hold.

    d = d0 + (target - d0) b(u) + rate0 T g(u) + acc0 T^2 h(u), u = t / T, with the smooth step
    b = 10u^3 - 15u^4 + 6u^5, g = u - 6u^3 + 8u^4 - 3u^5 (slope 1 at 0, flat at 1) and
    h = u^2/2 - 3u^3/2 + 3u^4/2 - u^5/2 (curvature 1 at 0, flat at 1); all are C2 so d, d-dot and d-ddot
    are continuous. Starting from the current lateral accel (not zero) is what lets a re-planned move
    keep slowing a sideways drift instead of restarting it. Returns (d, d-dot, d-ddot), each (L, T + 1).
    """
    tau = durations[:, None]
    u = np.clip(t[None, :] / tau, 0.0, 1.0)
    delta = (targets - d0)[:, None]
    d = d0 + delta * (10 * u**3 - 15 * u**4 + 6 * u**5) + rate0 * tau * (u - 6 * u**3 + 8 * u**4 - 3 * u**5)
    rate = delta * (30 * u**2 - 60 * u**3 + 30 * u**4) / tau + rate0 * (1 - 18 * u**2 + 32 * u**3 - 15 * u**4)
    acc = delta * (60 * u - 180 * u**2 + 120 * u**3) / tau**2 + rate0 * (-36 * u + 96 * u**2 - 60 * u**3) / tau
    d = d + acc0 * tau**2 * (0.5 * u**2 - 1.5 * u**3 + 1.5 * u**4 - 0.5 * u**5)
    rate = rate + acc0 * tau * (u - 4.5 * u**2 + 6 * u**3 - 2.5 * u**4)
    acc = acc + acc0 * (1 - 9 * u + 18 * u**2 - 10 * u**3)
    return d, rate, acc


@dataclass(frozen=True)
class LaneCommitment:
    """A lane change in progress: the lane centre it goes to and the time left to finish it.

    Without it every cycle restarts the move with a full duration from where the car is, so the change
    never ends and the lane nearest now decides the target (it flips at the midpoint).
    """

    target_offset_m: float
    remaining_s: float


_MIN_REMAINING_S = 1.0  # a late lane change still gets this long (the lateral limits decide if it is feasible)


def lateral_profiles(
    d0_m: float,
    d_rate0_mps: float,
    reference: ReferencePath,
    ego_half_width_m: float,
    config: CandidateConfig,
    commitment: LaneCommitment | None = None,
    d_accel0_mps2: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, d-dot, d-ddot), each (L, T + 1); row 0 holds the current offset (braking in lane).

    The moves start from the current lateral offset, speed and accel; with a ``commitment`` the moves
    into its lane finish within the time left.
    """
    t = np.arange(config.num_steps + 1) * config.dt_s
    lane = reference.lane_index(d0_m)
    reachable = reference.lane_offsets_m[
        max(0, lane - config.max_lane_changes) : lane + config.max_lane_changes + 1
    ]
    targets = (reachable[:, None] + np.asarray(config.lateral_nudges_m)[None, :]).reshape(-1)
    inside = (targets + ego_half_width_m <= reference.road_left_m) & (
        targets - ego_half_width_m >= -reference.road_right_m
    )
    targets = targets[inside]
    durations = np.asarray(config.lane_change_durations_s, dtype=np.float64)
    grid_targets = np.repeat(targets, len(durations))
    grid_durations = np.tile(durations, len(targets))
    if commitment is not None:  # moves into the committed lane end by its deadline (no Zeno restarts)
        into = np.isclose(grid_targets, commitment.target_offset_m)
        left_s = max(commitment.remaining_s, _MIN_REMAINING_S)
        grid_durations = np.where(into, np.minimum(grid_durations, left_s), grid_durations)
    d, rate, acc = _quintic(d0_m, d_rate0_mps, grid_targets, grid_durations, t, d_accel0_mps2)
    hold = np.full((1, len(t)), d0_m)
    zero = np.zeros((1, len(t)))
    return np.concatenate([hold, d]), np.concatenate([zero, rate]), np.concatenate([zero, acc])


def _feasible(
    v: np.ndarray, a: np.ndarray, d_rate: np.ndarray, d_acc: np.ndarray, kappa_path: np.ndarray, limits: VehicleLimits
) -> BoolArray:
    """(..., T + 1) -> (...): curvature, lateral-accel and heading-error limits hold at every step."""
    speed_sq = v**2 + d_rate**2
    heading_error = np.arctan2(d_rate, np.maximum(v, _SPEED_EPS_MPS))
    # Curvature of the (s(t), d(t)) curve plus the path's own curvature (small-offset approximation).
    kappa = kappa_path + (v * d_acc - d_rate * a) / np.maximum(speed_sq, _SPEED_EPS_MPS) ** 1.5
    lat_accel = kappa * speed_sq
    moving = speed_sq > _MIN_SPEED_FOR_CURVATURE_MPS**2
    ok = np.abs(heading_error) <= limits.max_heading_error_rad
    ok &= ~moving | (np.abs(kappa) <= limits.max_curvature_1pm)
    ok &= np.abs(lat_accel) <= limits.max_lat_accel_mps2
    feasible: BoolArray = ok.all(axis=-1)
    return feasible


def compose(
    reference: ReferencePath,
    s0_m: float,
    lon: tuple[np.ndarray, np.ndarray, np.ndarray],
    lat: tuple[np.ndarray, np.ndarray, np.ndarray],
    dt_s: float,
    limits: VehicleLimits,
    ego_accel_mps2: float,
    keep: tuple[int, int] | None = None,
) -> Candidates:
    """All feasible (lateral, longitudinal) pairs as Cartesian trajectories.

    ``lon`` = (s from 0, v, a) rows (M, T + 1), ``lat`` = (d, d-dot, d-ddot) rows (L, T + 1);
    ``keep`` = (lateral row, longitudinal row) of a pair kept even if infeasible, the only pair of that
    lateral row (holding an offset is for braking in lane: driving on holding it leaves the car between lanes).
    """
    lon_s, lon_v, lon_a = lon
    lat_d, lat_rate, lat_acc = lat
    s_abs = s0_m + lon_s
    # The centreline at each longitudinal profile's s, once; a candidate only adds its lateral offset.
    x_c, y_c, yaw_c = reference.to_cartesian(s_abs, np.zeros_like(s_abs))
    kappa = reference.curvature_at(s_abs)
    feasible = _feasible(lon_v[None], lon_a[None], lat_rate[:, None], lat_acc[:, None], kappa[None], limits)
    if keep is not None:
        feasible[keep[0]] = False
        feasible[keep] = True
    lat_index, lon_index = np.nonzero(feasible)
    d_c = lat_d[lat_index]
    path_yaw = yaw_c[lon_index]
    x = x_c[lon_index] - d_c * np.sin(path_yaw)
    y = y_c[lon_index] + d_c * np.cos(path_yaw)
    v_c, a_c = lon_v[lon_index], lon_a[lon_index]
    stretch = 1.0 - kappa[lon_index] * d_c
    yaw = path_yaw + np.arctan2(lat_rate[lat_index], np.maximum(v_c * stretch, _SPEED_EPS_MPS))
    braking = -1
    if keep is not None:
        braking = int(np.flatnonzero((lat_index == keep[0]) & (lon_index == keep[1]))[0])
    return Candidates(
        times_s=np.arange(s_abs.shape[1]) * dt_s,
        s_m=s_abs[lon_index],
        d_m=d_c,
        x_m=x,
        y_m=y,
        yaw_rad=yaw,
        v_mps=v_c,
        a_mps2=a_c,
        d_accel_mps2=lat_acc[lat_index],
        longitudinal_index=lon_index,
        lateral_index=lat_index,
        lon_s_m=s_abs,
        lon_v_mps=lon_v,
        lon_a_mps2=lon_a,
        lat_d_m=lat_d,
        lat_rate_mps=lat_rate,
        lat_accel_mps2=lat_acc,
        braking_index=braking,
        ego_accel_mps2=ego_accel_mps2,
    )


def ego_frenet(ego: EgoState, reference: ReferencePath) -> tuple[float, float, float]:
    """(s, d, d-dot) of the ego: its projection and its lateral speed from the heading error."""
    s, d = reference.to_frenet(np.array(ego.x_m), np.array(ego.y_m))
    heading_error = ego.yaw_rad - float(reference.heading_at(s))
    heading_error = math.remainder(heading_error, 2.0 * math.pi)
    return float(s), float(d), ego.v_mps * math.sin(heading_error)


def speed_cap(reference: ReferencePath, config: CandidateConfig) -> float:
    """Fastest target speed offered: within the vehicle limit, the speed limit and the config."""
    return min(config.limits.max_speed_mps, reference.speed_limit_mps, config.max_target_speed_mps)


def plan_candidates(
    ego: EgoState,
    reference: ReferencePath,
    config: CandidateConfig,
    commitment: LaneCommitment | None = None,
    d_accel0_mps2: float = 0.0,
) -> Candidates:
    """The feasible candidate set for the ego's current state (braking in lane always included).

    ``d_accel0_mps2``: the lateral accel the ego is in (the previous plan's; odometry does not give it).
    """
    s0, d0, d_rate0 = ego_frenet(ego, reference)
    v0 = max(float(ego.v_mps), 0.0)
    a0 = float(np.clip(ego.a_mps2, -config.limits.max_decel_mps2, config.limits.max_accel_mps2))
    lon = longitudinal_profiles(v0, a0, speed_cap(reference, config), config)
    lat = lateral_profiles(d0, d_rate0, reference, 0.5 * ego.width_m, config, commitment, d_accel0_mps2)
    return compose(reference, s0, lon, lat, config.dt_s, config.limits, a0, keep=(0, len(lon[0]) - 1))
