"""Cost of every (candidate, scenario) pair, in one vectorised pass.

Interaction terms (per agent and time step, summed over both, times dt):

* collision: soft footprint overlap, 1 when the footprints overlap by ``collision_margin_m``,
  1/2 when they touch, 0 when they are ``collision_margin_m`` apart;
* time to collision as in RAP, ``ttc * exp(-TTC^2 / 2 sigma_1 - d^2 / 2 sigma_2)``, with the TTC of
  the longitudinal gap at the current closing speed and d the lateral clearance.

Footprint approximation (instead of discs): both footprints are boxes aligned with the reference
path in the Frenet frame. The ego box ignores the ego's small heading error during a lane change
(bounded by ``VehicleLimits.max_heading_error_rad``); an agent's oriented box is replaced by its
Frenet bounding box from its direction of motion (exact when aligned or crossing at right angles,
conservative in between; an agent slower than 0.5 m/s is taken as aligned with the road, since the
forecast carries no heading). Path curvature's stretch of s at an offset d is ignored. In this frame
each term is a product f(longitudinal) * g(lateral), and because the candidates are a grid of
lateral x longitudinal profiles, the sum over agents and steps becomes a batched matrix product per
term, (S, M, J) @ (S, J, L) over the J relevant (agent, step) columns: that, not discs, is what keeps
500+ candidates x 64 scenarios x 32 agents within milliseconds. The factors are defined once, in
``cost_terms``; ``interaction_direct`` / ``interaction_gradient`` (one trajectory, the refinement)
and ``evaluate_naive`` (one candidate at a time, the benchmark's baseline) use the same functions.

Deterministic terms (same in every scenario): speed tracking, lateral offset from the target lane,
comfort (longitudinal accel and jerk, lateral accel) and leaving the drivable area's lateral limits.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np

from rap_planner.core.candidates import Candidates
from rap_planner.core.cost_terms import (
    NUM_TERMS,
    LateralGeometry,
    LongitudinalGeometry,
    can_overlap,
    lateral_factors,
    lateral_ttc_log_factor,
    longitudinal_factors,
    longitudinal_partials,
    longitudinal_ttc_log_factor,
    ttc_time_scale_s,
)
from rap_planner.core.parameters import PLANNER
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.scenarios import Scenarios

_ALIGNED_BELOW_MPS = 0.5  # slower agents are taken as aligned with the road (no heading in a forecast)
_PRUNE_BOUND = 1e-5  # (agent, step) columns whose TTC factors are all below this (and cannot overlap) are skipped
_BLOCK_SCENARIOS = 8  # scenarios per block of the kernel: keeps its temporaries in the L2 cache
_WORKERS = 2  # numpy releases the GIL inside ufuncs, so two threads use two cores


@dataclass(frozen=True)
class CostWeights:
    """Weights (and the shape parameters of the interaction terms) of the cost."""

    collision: float = PLANNER.config_default("weights.collision", float)  # per second of full footprint overlap
    ttc: float = PLANNER.config_default("weights.ttc", float)  # RAP's TTC cost scale, per second
    ttc_sigma_time_s2: float = 1.0  # sigma_1 of the TTC cost
    ttc_sigma_dist_m2: float = 0.5  # sigma_2 of the TTC cost
    collision_margin_m: float = 0.5
    progress: float = PLANNER.config_default("weights.progress", float)  # per (m/s)^2 s of speed error
    lane: float = PLANNER.config_default("weights.lane", float)  # per m^2 s of lateral offset from the target lane
    comfort: float = PLANNER.config_default("weights.comfort", float)  # per (m/s^2)^2 s of lon. and lat. accel
    jerk_ratio: float = 0.1  # weight of jerk^2 relative to accel^2 in the comfort term [s^2]
    road: float = 100.0  # per m^2 s of footprint beyond the drivable area's lateral limits

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"weights.{f.name} must be finite and >= 0, got {value!r}")
        for name in ("ttc_sigma_time_s2", "ttc_sigma_dist_m2", "collision_margin_m"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"weights.{name} must be positive")


@dataclass
class AgentTracks:
    """Scenario agents in the Frenet frame: one column per (agent, time step) pair.

    Arrays are (S, J) float32; ``step_index`` (J,) is the column's time step (0 = the first future
    step). Columns that cannot matter are dropped with ``select``.
    """

    s_m: np.ndarray
    d_m: np.ndarray
    v_s_mps: np.ndarray  # speed along the path
    half_length_m: np.ndarray  # Frenet bounding box half extent along s
    half_width_m: np.ndarray  # ... and along d
    step_index: np.ndarray
    num_steps: int
    weights: np.ndarray  # (S,) float64

    @property
    def num_columns(self) -> int:
        return int(self.s_m.shape[1])

    @property
    def num_scenarios(self) -> int:
        return int(self.s_m.shape[0])

    def select(self, columns: np.ndarray) -> AgentTracks:
        """The tracks restricted to some columns (boolean mask or indices over J)."""
        def pick(values: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(values[:, columns])

        return AgentTracks(pick(self.s_m), pick(self.d_m), pick(self.v_s_mps), pick(self.half_length_m),
                           pick(self.half_width_m), step_index=self.step_index[columns], num_steps=self.num_steps,
                           weights=self.weights)

    def per_step(self, values: np.ndarray) -> np.ndarray:
        """Sum (S, J) column values into (S, T) per time step."""
        rows = np.arange(self.num_scenarios)[:, None] * self.num_steps
        flat = (rows + self.step_index[None, :]).reshape(-1)
        summed = np.bincount(flat, weights=values.reshape(-1), minlength=self.num_scenarios * self.num_steps)
        return summed.reshape(self.num_scenarios, self.num_steps)


def agent_tracks(scenarios: Scenarios, reference: ReferencePath) -> AgentTracks:
    """Project every scenario position onto the path; velocities by finite differences in time."""
    pos = scenarios.positions_m
    num_s, num_n, num_t, _ = pos.shape
    f32 = np.float32
    steps = np.tile(np.arange(num_t), num_n)  # columns are agent-major: (agent 0, steps...), (agent 1, ...)
    if num_n == 0:
        empty = np.zeros((num_s, 0), f32)
        return AgentTracks(*(empty,) * 5, step_index=steps, num_steps=num_t, weights=scenarios.weights)
    mean_s, _ = reference.to_frenet(*pos.mean(axis=0).transpose(2, 0, 1))  # k-d tree on N x T points only
    s, d = reference.to_frenet(pos[..., 0], pos[..., 1], s_guess_m=mean_s[None])
    s, d = s.astype(f32), d.astype(f32)
    if num_t > 1:
        dt = float(scenarios.times_s[1] - scenarios.times_s[0])
        v_s, v_d = np.gradient(s, dt, axis=2), np.gradient(d, dt, axis=2)
    else:
        v_s, v_d = np.zeros_like(s), np.zeros_like(d)
    speed = np.hypot(v_s, v_d)
    moving = speed > _ALIGNED_BELOW_MPS
    inv_speed = np.where(moving, 1.0 / np.maximum(speed, f32(_ALIGNED_BELOW_MPS)), f32(0.0))
    cos = np.where(moving, np.abs(v_s) * inv_speed, f32(1.0))  # |cos| and |sin| of the heading to the path
    sin = np.abs(v_d) * inv_speed
    length = scenarios.lengths_m.astype(f32)[None, :, None]
    width = scenarios.widths_m.astype(f32)[None, :, None]
    columns = (num_s, num_n * num_t)
    return AgentTracks(
        s_m=s.reshape(columns),
        d_m=d.reshape(columns),
        v_s_mps=v_s.reshape(columns),
        half_length_m=(0.5 * (length * cos + width * sin)).reshape(columns),
        half_width_m=(0.5 * (length * sin + width * cos)).reshape(columns),
        step_index=steps,
        num_steps=num_t,
        weights=scenarios.weights,
    )


class _Workspace(threading.local):
    """Per-thread reusable flat buffers, so the hot loop allocates (and page-faults) nothing."""

    def __init__(self) -> None:
        self.flat: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type[np.generic] = np.float32) -> np.ndarray:
        size = math.prod(shape)
        flat = self.flat.get(name)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = np.empty(max(size, 1), dtype=dtype)
            self.flat[name] = flat
        return flat[:size].reshape(shape)


_WORKSPACE = _Workspace()


@dataclass
class _Profiles:
    """Candidate profiles at each column's step (float32): longitudinal (1, M, J), lateral (1, J, L)."""

    s_m: np.ndarray
    approach_m: np.ndarray  # ego speed x the TTC time scale (see LongitudinalGeometry)
    d_m: np.ndarray
    dt_s: float


_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


def _term_sum(lon_factors: list[np.ndarray], lat_factors: list[np.ndarray]) -> np.ndarray:
    """Sum over the terms of longitudinal x lateral factor, elementwise."""
    total: np.ndarray = lon_factors[0] * lat_factors[0]
    for lon, lat in zip(lon_factors[1:], lat_factors[1:], strict=True):
        total += lon * lat
    return total


def _column_sum(pair: np.ndarray) -> np.ndarray:
    """(S,) sum of (S, J) float32 pair terms, accumulated in float64."""
    total: np.ndarray = pair.sum(axis=1, dtype=np.float64)
    return total


def _pool() -> ThreadPoolExecutor:
    """The kernel's worker threads, started on first use and shared by every CostModel."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(_WORKERS, thread_name_prefix="rap-costs"))
        return _POOL[0]


class CostModel:
    """Costs of candidates against scenarios for one reference path, target and weight set."""

    def __init__(
        self,
        reference: ReferencePath,
        weights: CostWeights,
        target_speed_mps: float,
        target_offset_m: float,
        ego_length_m: float,
        ego_width_m: float,
    ) -> None:
        self.reference = reference
        self.weights = weights
        self.target_speed_mps = float(target_speed_mps)
        self.target_offset_m = float(target_offset_m)
        self.ego_half_length_m = 0.5 * float(ego_length_m)
        self.ego_half_width_m = 0.5 * float(ego_width_m)

    # ------------------------------------------------------------------ deterministic terms

    def longitudinal_cost(self, v_mps: np.ndarray, a_mps2: np.ndarray, a_prev_mps2: float, dt_s: float) -> np.ndarray:
        """Speed tracking + accel + jerk of rows (..., T + 1) (the refinement's quadratic, exactly)."""
        w = self.weights
        speed = np.sum((v_mps[..., 1:] - self.target_speed_mps) ** 2, axis=-1)
        accel = a_mps2[..., :-1]
        jerk = np.diff(accel, axis=-1, prepend=a_prev_mps2) / dt_s
        comfort = np.sum(accel**2, axis=-1) + w.jerk_ratio * np.sum(jerk**2, axis=-1)
        cost: np.ndarray = dt_s * (w.progress * speed + w.comfort * comfort)
        return cost

    def lateral_cost(self, d_m: np.ndarray, d_accel_mps2: np.ndarray, dt_s: float) -> np.ndarray:
        """Lane offset + lateral accel + leaving the drivable area, rows (..., T + 1)."""
        w, ref = self.weights, self.reference
        d = d_m[..., 1:]
        lane = np.sum((d - self.target_offset_m) ** 2, axis=-1)
        left = np.maximum(d + self.ego_half_width_m - ref.road_left_m, 0.0)
        right = np.maximum(-ref.road_right_m - (d - self.ego_half_width_m), 0.0)
        road = np.sum(left**2 + right**2, axis=-1)
        comfort = np.sum(d_accel_mps2[..., :-1] ** 2, axis=-1)
        cost: np.ndarray = dt_s * (w.lane * lane + w.road * road + w.comfort * comfort)
        return cost

    def deterministic(self, cands: Candidates) -> np.ndarray:
        """(C,) scenario-independent cost of each candidate."""
        dt = cands.dt_s
        lon = self.longitudinal_cost(cands.lon_v_mps, cands.lon_a_mps2, cands.ego_accel_mps2, dt)
        cost: np.ndarray = lon[cands.longitudinal_index] + self.lateral_cost(cands.d_m, cands.d_accel_mps2, dt)
        return cost

    # ------------------------------------------------------------------ interaction terms

    def relevant_columns(self, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
        """(J,) mask of the (agent, step) columns that can cost more than a negligible amount.

        A column is dropped when ``within_reach`` is false in every scenario, so the error is at most
        ``ttc * dt * _PRUNE_BOUND`` per dropped column.
        """
        reach = self.within_reach(cands, tracks.step_index, tracks.s_m, tracks.d_m, tracks.v_s_mps,
                                  tracks.half_length_m, tracks.half_width_m)
        relevant: np.ndarray = np.any(reach, axis=0)
        return relevant

    def within_reach(self, cands: Candidates, step: np.ndarray, s_m: np.ndarray, d_m: np.ndarray,
                     v_s_mps: np.ndarray, half_length_m: np.ndarray, half_width_m: np.ndarray,
                     position_slack_m: np.ndarray | float = 0.0, speed_slack_mps: np.ndarray | float = 0.0
                     ) -> np.ndarray:
        """Whether agent boxes at future ``step`` (0 = first) can overlap, or cost more than a negligible TTC
        term with, any candidate.

        Bounds from the envelope of all candidates at that step: footprints not within the collision margin,
        and a TTC factor below ``_PRUNE_BOUND`` at the largest possible closing speed. The slacks widen the
        box (positions and speed along the path) for callers that bound whole distributions, not points.
        """
        w, margin = self.weights, self.weights.collision_margin_m
        lon_s, lon_v, lat_d = cands.lon_s_m[:, 1:], cands.lon_v_mps[:, 1:], cands.lat_d_m[:, 1:]
        lon_dist = np.maximum(np.maximum(lon_s.min(0)[step] - s_m, s_m - lon_s.max(0)[step]), 0.0)
        closing = np.maximum(lon_v.max(0)[step] - v_s_mps, v_s_mps - lon_v.min(0)[step]) + speed_slack_mps
        lon = LongitudinalGeometry(  # the closest any candidate comes, closing at the largest speed either way
            ds_m=np.ones_like(lon_dist), dist_m=lon_dist,
            reach_m=np.asarray(self.ego_half_length_m + half_length_m + position_slack_m),
            approach_m=ttc_time_scale_s(w) * closing)
        lat = LateralGeometry(
            dist_m=np.maximum(np.maximum(lat_d.min(0)[step] - d_m, d_m - lat_d.max(0)[step]), 0.0),
            reach_m=np.asarray(self.ego_half_width_m + half_width_m + position_slack_m))
        overlap = can_overlap(lon.dist_m, lon.reach_m, margin) & can_overlap(lat.dist_m, lat.reach_m, margin)
        log_ttc, closing = longitudinal_ttc_log_factor(lon)
        log_ttc += lateral_ttc_log_factor(lat.dist_m, lat.reach_m, w.ttc_sigma_dist_m2)
        reach: np.ndarray = overlap | (closing & (log_ttc > math.log(_PRUNE_BOUND)))
        return reach

    def interaction_grid(self, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
        """(S, M, L) interaction cost of every longitudinal x lateral profile pair."""
        num_s = tracks.num_scenarios
        out = np.zeros((num_s, cands.lon_s_m.shape[0], cands.lat_d_m.shape[0]), np.float32)
        if tracks.num_columns == 0:
            return out
        profiles = self._profiles(cands, tracks.step_index)
        blocks = [slice(i, min(i + _BLOCK_SCENARIOS, num_s)) for i in range(0, num_s, _BLOCK_SCENARIOS)]
        if len(blocks) == 1:
            self._kernel(profiles, tracks, blocks, out)
            return out
        jobs = [_pool().submit(self._kernel, profiles, tracks, blocks[k::_WORKERS], out) for k in range(_WORKERS)]
        for job in jobs:
            job.result()
        return out

    def _profiles(self, cands: Candidates, step: np.ndarray) -> _Profiles:
        """Candidate profiles at each column's step, pre-shaped for the kernel."""
        future = step + 1  # column steps count from the first future step
        return _Profiles(
            s_m=cands.lon_s_m[:, future][None].astype(np.float32),
            approach_m=(ttc_time_scale_s(self.weights) * cands.lon_v_mps[:, future][None]).astype(np.float32),
            d_m=np.ascontiguousarray(cands.lat_d_m[:, future].T)[None].astype(np.float32),
            dt_s=cands.dt_s,
        )

    def _kernel(self, prof: _Profiles, tracks: AgentTracks, blocks: list[slice], out: np.ndarray) -> None:
        """Fill out[block] for each scenario block: G (longitudinal factors) @ H (lateral factors), in place."""
        ws = _WORKSPACE
        num_m, num_l, num_j = prof.s_m.shape[1], prof.d_m.shape[2], tracks.num_columns
        time_scale_s = ttc_time_scale_s(self.weights)
        for block in blocks:
            b = block.stop - block.start
            shape_g, shape_h = (b, num_m, num_j), (b, num_j, num_l)
            g = ws.get("g", (NUM_TERMS, b, num_m, num_j))  # term-major: each factor is one contiguous array
            h = ws.get("h", (NUM_TERMS, b, num_j, num_l))
            ds = np.subtract(tracks.s_m[block, None], prof.s_m, out=ws.get("ds", shape_g))
            lon = LongitudinalGeometry(
                ds_m=ds, dist_m=np.abs(ds, out=ws.get("dist_s", shape_g)),
                reach_m=tracks.half_length_m[block, None] + self.ego_half_length_m,
                approach_m=np.subtract(prof.approach_m, time_scale_s * tracks.v_s_mps[block, None],
                                       out=ws.get("approach", shape_g)))
            longitudinal_factors(lon, self.weights, prof.dt_s, out=list(g), work=ws.get("work", shape_g),
                                 closing=ws.get("closing", shape_g, np.bool_))
            dd = np.subtract(tracks.d_m[block, :, None], prof.d_m, out=ws.get("dist_d", shape_h))
            lat = LateralGeometry(dist_m=np.abs(dd, out=dd),
                                  reach_m=(tracks.half_width_m[block] + self.ego_half_width_m)[..., None])
            lateral_factors(lat, self.weights, out=list(h))
            np.matmul(g[0], h[0], out=out[block])
            for k in range(1, NUM_TERMS):
                out[block] += np.matmul(g[k], h[k], out=ws.get("term", (b, num_m, num_l)))

    def evaluate(self, cands: Candidates, tracks: AgentTracks, prune: bool = True) -> np.ndarray:
        """(C, S) total cost: deterministic + interaction, float64."""
        if prune and tracks.num_columns:
            tracks = tracks.select(self.relevant_columns(cands, tracks))
        grid = self.interaction_grid(cands, tracks)
        inter = grid[:, cands.longitudinal_index, cands.lateral_index].T
        return self.deterministic(cands)[:, None] + inter.astype(np.float64)

    # ------------------------------------------------------------------ one trajectory at a time

    def interaction_direct(self, s_m: np.ndarray, v_mps: np.ndarray, d_m: np.ndarray, tracks: AgentTracks,
                           dt_s: float) -> np.ndarray:
        """(S,) interaction cost of one ego trajectory (steps 1..T, arrays (T,)), computed directly."""
        lon, lat = self._pair_geometry(s_m, v_mps, d_m, tracks)
        pair = _term_sum(longitudinal_factors(lon, self.weights, dt_s), lateral_factors(lat, self.weights))
        return _column_sum(pair)

    def interaction_gradient(self, s_m: np.ndarray, v_mps: np.ndarray, d_m: np.ndarray, tracks: AgentTracks,
                             dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cost (S,), d cost / d s (S, T), d cost / d v (S, T)) of one ego trajectory, analytically."""
        lon, lat = self._pair_geometry(s_m, v_mps, d_m, tracks)
        lon_factors = longitudinal_factors(lon, self.weights, dt_s)
        lat_factors = lateral_factors(lat, self.weights)
        d_ds, d_dv = longitudinal_partials(lon, lon_factors, self.weights, dt_s)
        cost = _column_sum(_term_sum(lon_factors, lat_factors))
        return cost, tracks.per_step(_term_sum(d_ds, lat_factors)), tracks.per_step(_term_sum(d_dv, lat_factors))

    def _pair_geometry(self, s_m: np.ndarray, v_mps: np.ndarray, d_m: np.ndarray, tracks: AgentTracks
                       ) -> tuple[LongitudinalGeometry, LateralGeometry]:
        """One ego trajectory (steps 1..T) against the (S, J) columns, float32 like the kernel."""
        step = tracks.step_index
        time_scale_s = ttc_time_scale_s(self.weights)
        ego_s = np.asarray(s_m, dtype=np.float32)[step]
        ego_approach = (time_scale_s * np.asarray(v_mps, dtype=np.float64)).astype(np.float32)[step]
        ds = tracks.s_m - ego_s
        lon = LongitudinalGeometry(ds_m=ds, dist_m=np.abs(ds), reach_m=tracks.half_length_m + self.ego_half_length_m,
                                   approach_m=ego_approach - time_scale_s * tracks.v_s_mps)
        lat = LateralGeometry(dist_m=np.abs(tracks.d_m - np.asarray(d_m, dtype=np.float32)[step]),
                              reach_m=tracks.half_width_m + self.ego_half_width_m)
        return lon, lat

    def evaluate_naive(self, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
        """(C, S) like ``evaluate`` (without pruning), one candidate at a time: the baseline."""
        det = self.deterministic(cands)
        out = np.empty((cands.num, tracks.num_scenarios))
        for c in range(cands.num):
            out[c] = det[c] + self.interaction_direct(
                cands.s_m[c, 1:], cands.v_mps[c, 1:], cands.d_m[c, 1:], tracks, cands.dt_s
            )
        return out
