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
lateral x longitudinal profiles, the sum over agents and steps becomes a batched matrix product
(S, M, 2 J) @ (S, 2 J, L) over the J relevant (agent, step) columns: that, not discs, is what keeps
500+ candidates x 64 scenarios x 32 agents within milliseconds. ``CostModel.evaluate_naive``
computes the same maths one candidate at a time.

Deterministic terms (same in every scenario): speed tracking, lateral offset from the target lane,
comfort (longitudinal accel and jerk, lateral accel) and leaving the drivable area's lateral limits.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np

from rap_planner.core.candidates import Candidates
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.scenarios import Scenarios

_ALIGNED_BELOW_MPS = 0.5  # slower agents are taken as aligned with the road (no heading in a forecast)
_PRUNE_BOUND = 1e-5  # (agent, step) columns whose TTC factors are all below this (and cannot overlap) are skipped
_EPS = 1e-12
_BLOCK_SCENARIOS = 8  # scenarios per block of the kernel: keeps its temporaries in the L2 cache
_WORKERS = 2  # numpy releases the GIL inside ufuncs, so two threads use two cores
_OPENBLAS_NAMES = (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", ""))


@dataclass(frozen=True)
class CostWeights:
    """Weights (and the shape parameters of the interaction terms) of the cost."""

    collision: float = 100.0  # per second of full footprint overlap
    ttc: float = 10.0  # RAP's TTC cost scale, per second
    ttc_sigma_time_s2: float = 1.0  # sigma_1 of the TTC cost
    ttc_sigma_dist_m2: float = 0.5  # sigma_2 of the TTC cost
    collision_margin_m: float = 0.5
    progress: float = 1.0  # per (m/s)^2 s of speed below / above the target speed
    lane: float = 1.0  # per m^2 s of lateral offset from the target lane
    comfort: float = 0.1  # per (m/s^2)^2 s of longitudinal and lateral acceleration
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
        return self.s_m.shape[1]

    @property
    def num_scenarios(self) -> int:
        return self.s_m.shape[0]

    def select(self, columns: np.ndarray) -> AgentTracks:
        """The tracks restricted to some columns (boolean mask or indices over J)."""
        arrays = (np.ascontiguousarray(getattr(self, n)[:, columns]) for n in _TRACK_FIELDS)
        return AgentTracks(*arrays, step_index=self.step_index[columns], num_steps=self.num_steps,
                           weights=self.weights)

    def per_step(self, values: np.ndarray) -> np.ndarray:
        """Sum (S, J) column values into (S, T) per time step."""
        rows = np.arange(self.num_scenarios)[:, None] * self.num_steps
        flat = (rows + self.step_index[None, :]).reshape(-1)
        summed = np.bincount(flat, weights=values.reshape(-1), minlength=self.num_scenarios * self.num_steps)
        return summed.reshape(self.num_scenarios, self.num_steps)


_TRACK_FIELDS = ("s_m", "d_m", "v_s_mps", "half_length_m", "half_width_m")


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

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        size = math.prod(shape)
        flat = self.flat.get(name)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = np.empty(max(size, 1), dtype=dtype)
            self.flat[name] = flat
        return flat[:size].reshape(shape)


_WORKSPACE = _Workspace()
_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


@functools.cache
def _openblas_threads() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """(get, set) of the OpenBLAS thread count numpy uses, found in /proc/self/maps (Linux), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix, suffix in _OPENBLAS_NAMES:
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """OpenBLAS on one thread meanwhile (then restored): the kernel's own threads already use the
    cores, and OpenBLAS's spinning workers next to them (or next to a busy process) cost 10-30x."""
    threads = _openblas_threads()
    if threads is None:
        yield
        return
    get, put = threads
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)


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
        return dt_s * (w.progress * speed + w.comfort * comfort)

    def lateral_cost(self, d_m: np.ndarray, d_accel_mps2: np.ndarray, dt_s: float) -> np.ndarray:
        """Lane offset + lateral accel + leaving the drivable area, rows (..., T + 1)."""
        w, ref = self.weights, self.reference
        d = d_m[..., 1:]
        lane = np.sum((d - self.target_offset_m) ** 2, axis=-1)
        left = np.maximum(d + self.ego_half_width_m - ref.road_left_m, 0.0)
        right = np.maximum(-ref.road_right_m - (d - self.ego_half_width_m), 0.0)
        road = np.sum(left**2 + right**2, axis=-1)
        comfort = np.sum(d_accel_mps2[..., :-1] ** 2, axis=-1)
        return dt_s * (w.lane * lane + w.road * road + w.comfort * comfort)

    def deterministic(self, cands: Candidates) -> np.ndarray:
        """(C,) scenario-independent cost of each candidate."""
        dt = cands.dt_s
        lon = self.longitudinal_cost(cands.lon_v_mps, cands.lon_a_mps2, cands.ego_accel_mps2, dt)
        return lon[cands.longitudinal_index] + self.lateral_cost(cands.d_m, cands.d_accel_mps2, dt)

    # ------------------------------------------------------------------ interaction terms

    def relevant_columns(self, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
        """(J,) mask of the (agent, step) columns that can cost more than a negligible amount.

        A column is dropped when ``within_reach`` is false in every scenario, so the error is at most
        ``ttc * dt * _PRUNE_BOUND`` per dropped column.
        """
        reach = self.within_reach(cands, tracks.step_index, tracks.s_m, tracks.d_m, tracks.v_s_mps,
                                  tracks.half_length_m, tracks.half_width_m)
        return np.any(reach, axis=0)

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
        w = self.weights
        lon_s, lon_v, lat_d = cands.lon_s_m[:, 1:], cands.lon_v_mps[:, 1:], cands.lat_d_m[:, 1:]
        lon_gap = np.maximum(np.maximum(lon_s.min(0)[step] - s_m, s_m - lon_s.max(0)[step]), 0.0)
        lon_gap = lon_gap - (self.ego_half_length_m + half_length_m + position_slack_m)
        lat_gap = np.maximum(np.maximum(lat_d.min(0)[step] - d_m, d_m - lat_d.max(0)[step]), 0.0)
        lat_gap = lat_gap - (self.ego_half_width_m + half_width_m + position_slack_m)
        overlap = (lon_gap < w.collision_margin_m) & (lat_gap < w.collision_margin_m)
        closing = np.maximum(lon_v.max(0)[step] - v_s_mps, v_s_mps - lon_v.min(0)[step]) + speed_slack_mps
        ttc = np.maximum(lon_gap, 0.0) / np.maximum(closing, _EPS)
        exponent = ttc**2 / (2 * w.ttc_sigma_time_s2) + np.maximum(lat_gap, 0.0) ** 2 / (2 * w.ttc_sigma_dist_m2)
        ttc_possible = (closing > 0.0) & (exponent < -math.log(_PRUNE_BOUND))
        return overlap | ttc_possible

    def interaction_grid(self, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
        """(S, M, L) interaction cost of every longitudinal x lateral profile pair."""
        num_s = tracks.num_scenarios
        out = np.zeros((num_s, cands.lon_s_m.shape[0], cands.lat_d_m.shape[0]), np.float32)
        if tracks.num_columns == 0:
            return out
        profiles = self._profiles(cands, tracks.step_index)
        blocks = [slice(i, min(i + _BLOCK_SCENARIOS, num_s)) for i in range(0, num_s, _BLOCK_SCENARIOS)]
        with single_threaded_blas():
            if len(blocks) == 1:
                self._kernel(profiles, tracks, blocks, out)
                return out
            jobs = [_pool().submit(self._kernel, profiles, tracks, blocks[k::_WORKERS], out) for k in range(_WORKERS)]
            for job in jobs:
                job.result()
        return out

    def _profiles(self, cands: Candidates, step: np.ndarray) -> dict[str, np.ndarray]:
        """Candidate profiles at each column's step, pre-shaped and pre-scaled for the kernel."""
        root = math.sqrt(2.0 * self.weights.ttc_sigma_time_s2)
        future = step + 1  # column steps count from the first future step
        return {
            "s": cands.lon_s_m[:, future][None].astype(np.float32),  # (1, M, J)
            "v": (root * cands.lon_v_mps[:, future][None]).astype(np.float32),
            "d": np.ascontiguousarray(cands.lat_d_m[:, future].T)[None].astype(np.float32),  # (1, J, L)
            "dt": np.float32(cands.dt_s),
        }

    def _kernel(self, prof: dict, tracks: AgentTracks, blocks: list[slice], out: np.ndarray) -> None:
        """Fill out[block] for each scenario block: build G (lon factors) and H (lat factors), then matmul."""
        w, ws = self.weights, _WORKSPACE
        m = np.float32(w.collision_margin_m)
        num_m, num_l, num_j = prof["s"].shape[1], prof["d"].shape[2], tracks.num_columns
        root = np.float32(math.sqrt(2.0 * w.ttc_sigma_time_s2))
        col_scale = np.float32(w.collision * prof["dt"] / (2.0 * w.collision_margin_m))
        col_top = np.float32(w.collision * prof["dt"])
        log_ttc = np.float32(math.log(max(w.ttc * prof["dt"], _EPS)))
        lat_scale = np.float32(-1.0 / (2.0 * w.ttc_sigma_dist_m2))
        for block in blocks:
            b = block.stop - block.start
            shape_g = (b, num_m, num_j)
            g = ws.get("g", (b, num_m, 2, num_j))
            h = ws.get("h", (b, 2, num_j, num_l))
            ds, ads, r, tmp = (ws.get(k, shape_g) for k in ("ds", "ads", "r", "tmp"))
            cond = ws.get("cond", shape_g, np.bool_)
            s_a = tracks.s_m[block, None]
            half_l = tracks.half_length_m[block, None] + np.float32(self.ego_half_length_m)
            # collision, longitudinal factor: clip((h + m - |ds|) / 2m, 0, 1), weight folded in
            np.subtract(s_a, prof["s"], out=ds)
            np.abs(ds, out=ads)
            g_col, g_ttc = g[:, :, 0], g[:, :, 1]
            np.subtract(half_l + m, ads, out=g_col)
            np.multiply(g_col, col_scale, out=g_col)
            np.clip(g_col, 0.0, col_top, out=g_col)
            # TTC, longitudinal factor: exp(-gap^2 / (2 s1 vc^2)) where the gap closes (vc = sign(ds) dv > 0)
            np.subtract(prof["v"], root * tracks.v_s_mps[block, None], out=r)
            np.multiply(r, ds, out=tmp)
            np.greater(tmp, 0.0, out=cond)
            np.multiply(r, r, out=r)
            np.add(r, np.float32(_EPS), out=r)
            np.subtract(ads, half_l, out=ads)
            np.maximum(ads, 0.0, out=ads)
            np.multiply(ads, ads, out=ads)
            np.divide(ads, r, out=ads)
            np.subtract(log_ttc, ads, out=ads)
            np.exp(ads, out=g_ttc)
            np.multiply(g_ttc, cond, out=g_ttc)
            self._lateral_factors(prof["d"], tracks, block, m, lat_scale, h, ws)
            np.matmul(g.reshape(b, num_m, -1), h.reshape(b, -1, num_l), out=out[block])

    def _lateral_factors(self, lat_d, tracks, block, m, lat_scale, h, ws) -> None:
        """H[:, 0] = soft lateral overlap, H[:, 1] = exp(-clearance^2 / 2 s2), both (b, J, L)."""
        b = block.stop - block.start
        dd = ws.get("dd", (b,) + h.shape[2:])
        half_w = (tracks.half_width_m[block] + np.float32(self.ego_half_width_m))[..., None]
        np.subtract(tracks.d_m[block, :, None], lat_d, out=dd)
        np.abs(dd, out=dd)
        h_col, h_ttc = h[:, 0], h[:, 1]
        np.subtract(half_w + m, dd, out=h_col)
        np.multiply(h_col, np.float32(0.5) / m, out=h_col)
        np.clip(h_col, 0.0, 1.0, out=h_col)
        np.subtract(dd, half_w, out=dd)
        np.maximum(dd, 0.0, out=dd)
        np.multiply(dd, dd, out=dd)
        np.multiply(dd, lat_scale, out=dd)
        np.exp(dd, out=h_ttc)

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
        cost, _, _ = self._pair_terms(s_m, v_mps, d_m, tracks, dt_s, gradient=False)
        return cost

    def interaction_gradient(self, s_m: np.ndarray, v_mps: np.ndarray, d_m: np.ndarray, tracks: AgentTracks,
                             dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cost (S,), d cost / d s (S, T), d cost / d v (S, T)) of one ego trajectory, analytically."""
        return self._pair_terms(s_m, v_mps, d_m, tracks, dt_s, gradient=True)

    def _pair_terms(self, s_m, v_mps, d_m, tracks: AgentTracks, dt_s: float, gradient: bool):
        """The interaction maths on (S, J) for one ego trajectory (float32 terms, float64 sums)."""
        w = self.weights
        m = w.collision_margin_m
        f32 = np.float32
        step = tracks.step_index
        s_m, v_mps, d_m = (np.asarray(x, dtype=f32)[step] for x in (s_m, v_mps, d_m))
        ds = tracks.s_m - s_m
        ads = np.abs(ds)
        half_l = tracks.half_length_m + self.ego_half_length_m
        lon_ramp = (half_l + m - ads) * (0.5 / m)
        col_lon = np.minimum(np.maximum(lon_ramp, 0.0), 1.0)
        sign = np.sign(ds)
        closing = sign * (v_mps - tracks.v_s_mps)
        gap = np.maximum(ads - half_l, 0.0)
        safe_closing = np.maximum(closing, _EPS)
        ttc_lon = np.where(closing > 0.0, np.exp(-(gap**2) / (2 * w.ttc_sigma_time_s2 * safe_closing**2)), 0.0)
        add = np.abs(tracks.d_m - d_m)
        half_w = tracks.half_width_m + self.ego_half_width_m
        col_lat = np.minimum(np.maximum((half_w + m - add) * (0.5 / m), 0.0), 1.0)
        clearance = np.maximum(add - half_w, 0.0)
        ttc_lat = np.exp(-(clearance**2) / (2 * w.ttc_sigma_dist_m2))
        pair = f32(w.collision) * col_lon * col_lat + f32(w.ttc) * ttc_lon * ttc_lat
        cost = dt_s * pair.sum(axis=1, dtype=np.float64)
        if not gradient:
            return cost, None, None
        on_ramp = (lon_ramp > 0.0) & (lon_ramp < 1.0)
        d_col_ds = np.where(on_ramp, sign * (0.5 / m), 0.0)  # ds = s_agent - s_ego, so d|ds|/ds_ego = -sign
        ttc_slope = ttc_lon * gap / (w.ttc_sigma_time_s2 * safe_closing**2)  # -d ttc / d gap
        d_gap_ds = np.where(ads > half_l, -sign, 0.0)
        grad_s = w.collision * col_lat * d_col_ds - w.ttc * ttc_lat * ttc_slope * d_gap_ds
        grad_v = w.ttc * ttc_lat * ttc_slope * (gap / safe_closing) * sign  # d ttc / d closing = slope gap / closing
        return cost, dt_s * tracks.per_step(grad_s), dt_s * tracks.per_step(grad_v)

    def evaluate_naive(self, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
        """(C, S) like ``evaluate`` (without pruning), one candidate at a time: the baseline."""
        det = self.deterministic(cands)
        out = np.empty((cands.num, tracks.num_scenarios))
        for c in range(cands.num):
            out[c] = det[c] + self.interaction_direct(
                cands.s_m[c, 1:], cands.v_mps[c, 1:], cands.d_m[c, 1:], tracks, cands.dt_s
            )
        return out
