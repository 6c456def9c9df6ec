"""Message <-> core type conversion. No maths beyond reshaping; invalid messages raise ValueError."""

from __future__ import annotations

import array
import math
import operator
from collections import Counter

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path

from rap_planner.core.types import AgentForecast, EgoState, ForecastSet, Plan, TrackedAgent
from rap_planner.msg import (
    AgentPrediction,
    PredictionArray,
    RiskAwarePlan,
    TrackedAgentArray,
    TrajectoryPoint,
)
from rap_planner.msg import TrackedAgent as TrackedAgentMsg

MAX_AGENT_ID = 2**63 - 1  # ids are uint64 on the wire but int64 arrays in the core (history, scenarios)
# Beyond these a value is not a pose or speed in a local map frame (UTM stays below 1e7 m) but an error; one such
# track drags the predictor's float32 origin so far that every other agent's forecast degrades or turns NaN.
MAX_ABS_POSITION_M = 1e7
MAX_SPEED_MPS = 1e3
MAX_FORECAST_STEPS = 1000  # as the predictor's config; 2^32-1 steps made the planner allocate 32 GB
MAX_VARIANCE_M2 = 1e8  # a 10 km standard deviation says nothing; beyond it the planner's arithmetic overflows
FORECAST_DT_RANGE_S = (1e-3, 10.0)  # a forecast step outside this is a unit or encoding error, not a forecast


def stamp_to_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def s_to_stamp(t_s: float) -> Time:
    sec = math.floor(t_s)
    return Time(sec=int(sec), nanosec=min(int(round((t_s - sec) * 1e9)), 999_999_999))


def s_to_duration(t_s: float) -> Duration:
    sec = math.floor(t_s)
    return Duration(sec=int(sec), nanosec=min(int(round((t_s - sec) * 1e9)), 999_999_999))


def duration_to_s(d: Duration) -> float:
    return d.sec + d.nanosec * 1e-9


def _f32(values: np.ndarray) -> array.array:
    """Fast path for float32[] fields: rclpy accepts array.array without per-element checks."""
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


def _np(values) -> np.ndarray:
    return np.frombuffer(values, dtype=np.float32) if isinstance(values, array.array) else np.asarray(
        values, dtype=np.float32)


def yaw_to_quaternion(yaw_rad: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation about +z."""
    return 0.0, 0.0, math.sin(yaw_rad / 2.0), math.cos(yaw_rad / 2.0)


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


# --- tracked agents ---------------------------------------------------------------------------

def tracked_agents_to_msg(agents: list[TrackedAgent], stamp_s: float, frame_id: str = "map") -> TrackedAgentArray:
    msg = TrackedAgentArray()
    msg.header.stamp = s_to_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.agents = [
        TrackedAgentMsg(id=int(a.agent_id), classification=int(a.classification), x=float(a.x_m), y=float(a.y_m),
                        yaw=float(a.yaw_rad), vx=float(a.vx_mps), vy=float(a.vy_mps), has_acceleration=True,
                        ax=float(a.ax_mps2), ay=float(a.ay_mps2), length=float(a.length_m), width=float(a.width_m))
        for a in agents
    ]
    return msg


_TRACK_VALUES = operator.attrgetter("id", "classification", "x", "y", "yaw", "vx", "vy", "has_acceleration", "ax",
                                    "ay", "length", "width")
_SPEED2_SURELY_OK = (MAX_SPEED_MPS * (1.0 - 1e-9)) ** 2  # vx^2 + vy^2 below this: hypot surely within MAX_SPEED_MPS


def tracked_agents_from_msg(msg: TrackedAgentArray) -> tuple[list[TrackedAgent], list[str]]:
    """Valid agents and one problem string per rejected agent (non-finite or impossible values).

    A few chained comparisons per agent pass the plausible ones (NaN fails every comparison); only the rest go
    through the full checks in ``_track_problem``, which also word the problem (200 agents at 20 Hz).
    """
    stamp_s = stamp_to_s(msg.header.stamp)
    agents: list[TrackedAgent] = []
    problems: list[str] = []
    for a in msg.agents:
        aid, classification, x, y, yaw, vx, vy, has_acc, ax, ay, length, width = _TRACK_VALUES(a)
        plausible = (aid <= MAX_AGENT_ID and _footprint_ok(length, width)
                     and -MAX_ABS_POSITION_M <= x <= MAX_ABS_POSITION_M
                     and -MAX_ABS_POSITION_M <= y <= MAX_ABS_POSITION_M
                     and -math.inf < yaw < math.inf and vx * vx + vy * vy < _SPEED2_SURELY_OK)
        if not plausible and (problem := _track_problem(a)):
            problems.append(problem)
            continue
        has_acc = has_acc and math.isfinite(ax) and math.isfinite(ay)
        agents.append(TrackedAgent(int(aid), stamp_s, x, y, yaw, vx, vy, float(length), float(width),
                                   ax if has_acc else 0.0, ay if has_acc else 0.0, int(classification)))
    return agents, problems


def _track_problem(a: TrackedAgentMsg) -> str | None:
    """Why this track is rejected, or None: the checks in their order, with the problem worded for the log."""
    values = (a.x, a.y, a.yaw, a.vx, a.vy, a.length, a.width)
    if a.id > MAX_AGENT_ID:
        return f"agent {a.id}: id above 2^63-1 (the core keeps ids as int64)"
    if not all(math.isfinite(v) for v in values):
        return f"agent {a.id}: non-finite pose/velocity/size"
    if not _footprint_ok(a.length, a.width):
        return f"agent {a.id}: footprint {a.length:.1f}x{a.width:.1f} m out of range"
    if max(abs(a.x), abs(a.y)) > MAX_ABS_POSITION_M or math.hypot(a.vx, a.vy) > MAX_SPEED_MPS:
        return f"agent {a.id}: position ({a.x:.3g}, {a.y:.3g}) m or speed out of range"
    return None


def _footprint_ok(length: float, width: float) -> bool:
    return 0.0 < length < 50.0 and 0.0 < width < 10.0


# --- predictions --------------------------------------------------------------------------------

def forecast_set_to_msg(forecasts: ForecastSet, frame_id: str = "map") -> PredictionArray:
    """The forecasts as a message; float32 casts run once per field over all agents (of the same array shapes)."""
    msg = PredictionArray()
    msg.header.stamp = s_to_stamp(forecasts.stamp_s)
    msg.header.frame_id = frame_id
    msg.dt = float(forecasts.dt_s)
    msg.num_steps = int(forecasts.num_steps)
    msg.num_modes = max((int(f.weights.shape[0]) for f in forecasts.agents), default=0)
    predictions: list[AgentPrediction | None] = [None] * len(forecasts.agents)
    for rows in _rows_by_shape(forecasts.agents).values():
        for i, prediction in zip(rows, _predictions([forecasts.agents[i] for i in rows]), strict=True):
            predictions[i] = prediction
    msg.agents.extend(predictions)
    num_samples = next((f.samples_m.shape[0] for f in reversed(forecasts.agents) if f.samples_m is not None), 0)
    if forecasts.sample_weights is not None and num_samples:
        msg.num_samples = num_samples
        msg.sample_weights = _f32(forecasts.sample_weights)
        msg.sample_risk_level = float(forecasts.sample_risk_level)
    return msg


def _rows_by_shape(agents: list[AgentForecast]) -> dict[tuple, list[int]]:
    """Indices of the agents whose arrays can be concatenated (same shapes but for the mode / sample count)."""
    rows: dict[tuple, list[int]] = {}
    for i, f in enumerate(agents):
        samples = None if f.samples_m is None else f.samples_m.shape[1:]
        rows.setdefault((f.means_m.shape[1:], f.covariances_m2.shape[1:], samples), []).append(i)
    return rows


def _predictions(agents: list[AgentForecast]) -> list[AgentPrediction]:
    """Messages of agents of one _rows_by_shape group: each field is a slice of one float32 array of the group."""
    means = np.concatenate([f.means_m for f in agents], dtype=np.float32)  # (sum K, T, 2)
    covs = np.concatenate([f.covariances_m2 for f in agents], dtype=np.float32)
    parts = [np.concatenate([f.weights for f in agents], axis=None, dtype=np.float32), np.moveaxis(means, -1, 0),
             covs[..., 0, 0], covs[..., 0, 1], covs[..., 1, 1]]
    step_size, cov_size = math.prod(means.shape[1:-1]), math.prod(covs.shape[1:-2])  # values per mode and field
    sizes = ([[f.weights.size for f in agents]] + 2 * [[len(f.means_m) * step_size for f in agents]]
             + 3 * [[len(f.covariances_m2) * cov_size for f in agents]])
    if agents[0].samples_m is not None:
        samples = np.concatenate([f.samples_m for f in agents], dtype=np.float32)
        parts.append(np.moveaxis(samples, -1, 0))
        sizes += 2 * [[len(f.samples_m) * math.prod(samples.shape[1:-1]) for f in agents]]
    flat, fields, start = _flat_f32(parts), [], 0
    for field_sizes in sizes:
        fields.append(_split(flat, start, field_sizes))
        start += sum(field_sizes)
    return [_agent_prediction(int(f.agent_id), float(f.length_m), float(f.width_m), arrays)
            for f, arrays in zip(agents, zip(*fields, strict=True), strict=True)]


def _flat_f32(parts: list[np.ndarray]) -> array.array:
    """The parts, each raveled, one after another in one float32 array.array (one pass over the data each)."""
    values = np.empty(sum(p.size for p in parts), np.float32)
    start = 0
    for p in parts:
        values[start:start + p.size].reshape(p.shape)[...] = p
        start += p.size
    flat = array.array("f")
    flat.frombytes(memoryview(values).cast("B"))
    return flat


def _split(flat: array.array, start: int, sizes: list[int]) -> list[array.array]:
    """Consecutive slices of ``flat`` from ``start`` (an array.array slice is one memcpy)."""
    out = []
    for size in sizes:
        out.append(flat[start:start + size])
        start += size
    return out


def _agent_prediction(agent_id: int, length: float, width: float, arrays: tuple[array.array, ...]) -> AgentPrediction:
    """AgentPrediction with ``arrays`` = mode_weights, mean_x, mean_y, cov_xx, cov_xy, cov_yy[, sample_x, sample_y]."""
    weights, mean_x, mean_y, cov_xx, cov_xy, cov_yy = arrays[:6]
    sample_x, sample_y = arrays[6:] or (array.array("f"), array.array("f"))
    return AgentPrediction(id=agent_id, length=length, width=width, mode_weights=weights, mean_x=mean_x,
                           mean_y=mean_y, cov_xx=cov_xx, cov_xy=cov_xy, cov_yy=cov_yy, sample_x=sample_x,
                           sample_y=sample_y)


_PER_STEP_FIELDS = operator.attrgetter("mean_x", "mean_y", "cov_xx", "cov_xy", "cov_yy")  # K*T values each


def forecast_set_from_msg(msg: PredictionArray) -> ForecastSet:
    """Raises ValueError naming the first inconsistency (array lengths, non-finite values, dt, covariances).

    Agents are checked and converted in one numpy pass per mode count (small numpy calls per agent took ~17 ms at
    200 agents); when that pass finds a problem, the agents are checked one by one to name the first.
    """
    steps, modes, samples = int(msg.num_steps), int(msg.num_modes), int(msg.num_samples)
    if not (math.isfinite(msg.dt) and msg.dt > 0.0):
        raise ValueError(f"prediction dt {msg.dt} is not a positive number")
    if not FORECAST_DT_RANGE_S[0] <= msg.dt <= FORECAST_DT_RANGE_S[1]:
        raise ValueError(f"prediction dt {msg.dt:.3g} s is outside [{FORECAST_DT_RANGE_S[0]:g}, "
                         f"{FORECAST_DT_RANGE_S[1]:g}] s")
    if steps == 0 and msg.agents:
        raise ValueError("prediction has agents but num_steps is 0")
    if steps > MAX_FORECAST_STEPS:
        raise ValueError(f"prediction num_steps {steps} is above {MAX_FORECAST_STEPS}")
    rows = _rows_by_modes(msg.agents, steps, modes, samples)
    agents = None if rows is None else _agent_forecasts(msg.agents, rows, steps, samples)
    if agents is None:
        raise ValueError(_first_problem(msg.agents, steps, modes, samples))
    if len({a.agent_id for a in agents}) != len(agents):  # which forecast is the agent's? neither can be trusted
        repeated = next(i for i, n in Counter(a.agent_id for a in agents).items() if n > 1)
        raise ValueError(f"agent {repeated}: id appears more than once")
    sample_weights = None
    if samples:
        sample_weights = _np(msg.sample_weights).astype(np.float64)
        if sample_weights.shape[0] != samples or not np.isfinite(sample_weights).all() or sample_weights.sum() <= 0:
            raise ValueError("sample_weights must hold num_samples finite values with a positive sum")
        sample_weights = sample_weights / sample_weights.sum()
    return ForecastSet(stamp_s=stamp_to_s(msg.header.stamp), dt_s=float(msg.dt), num_steps=steps, agents=agents,
                       sample_weights=sample_weights, sample_risk_level=float(msg.sample_risk_level))


def _rows_by_modes(agents: list[AgentPrediction], steps: int, modes: int, samples: int) -> dict[int, list[int]] | None:
    """Indices of the agents per mode count K; None if any agent has a bad id, array length or footprint."""
    rows: dict[int, list[int]] = {}
    for i, a in enumerate(agents):
        k = len(a.mode_weights)
        n = k * steps
        if (a.id > MAX_AGENT_ID or k == 0 or (modes and k > modes) or not _footprint_ok(a.length, a.width)
                or any(len(f) != n for f in _PER_STEP_FIELDS(a))
                or (samples and not len(a.sample_x) == len(a.sample_y) == samples * steps)):
            return None
        rows.setdefault(k, []).append(i)
    return rows


def _agent_forecasts(agents: list[AgentPrediction], rows: dict[int, list[int]], steps: int,
                     samples: int) -> list[AgentForecast] | None:
    """The agents' forecasts (arrays are views into per-K batches), or None if a value check fails."""
    samples_m = _samples(agents, samples, steps) if samples and agents else None
    if samples_m is not None and not _samples_ok(samples_m[..., 0], samples_m[..., 1]):
        return None
    out: list[AgentForecast | None] = [None] * len(agents)
    for k, indices in rows.items():
        batch = _mode_batch([agents[i] for i in indices], k, steps)
        if batch is None:
            return None
        for i, weights, means, covs in zip(indices, *batch, strict=True):
            a = agents[i]
            out[i] = AgentForecast(agent_id=int(a.id), weights=weights, means_m=means, covariances_m2=covs,
                                   length_m=float(a.length), width_m=float(a.width),
                                   samples_m=None if samples_m is None else samples_m[i])
    return out


def _mode_batch(agents: list[AgentPrediction], k: int, steps: int) -> tuple[np.ndarray, ...] | None:
    """(n, K) normalised weights, (n, K, T, 2) means, (n, K, T, 2, 2) covariances of agents with K modes each.

    None if a value is non-finite, a weight negative, all weights 0 or a covariance not PSD: _agent_problem's
    value checks, elementwise on the batch.
    """
    n = len(agents)
    weights = np.frombuffer(b"".join([a.mode_weights for a in agents]), np.float32).reshape(n, k).astype(np.float64)
    per_step = np.frombuffer(b"".join([f for a in agents for f in _PER_STEP_FIELDS(a)]), np.float32)
    if not (np.isfinite(weights).all() and np.isfinite(per_step).all()):
        return None
    mx, my, cxx, cxy, cyy = per_step.reshape(n, 5, k, steps).astype(np.float64).transpose(1, 0, 2, 3)
    sums = weights.sum(axis=1, keepdims=True)  # row sums: the same additions as each agent's weights.sum()
    if (weights < 0.0).any() or (sums <= 0.0).any() or _not_psd(cxx, cxy, cyy).any():
        return None
    if _out_of_range(mx, my) or max(cxx.max(initial=0.0), cyy.max(initial=0.0)) > MAX_VARIANCE_M2:
        return None
    covs = np.stack([np.stack([cxx, cxy], -1), np.stack([cxy, cyy], -1)], -2)
    return weights / sums, np.stack([mx, my], -1), covs


def _samples(agents: list[AgentPrediction], samples: int, steps: int) -> np.ndarray:
    """(N, S, T, 2) joint samples of all agents (sample array lengths already checked)."""
    raw = np.frombuffer(b"".join([f for a in agents for f in (a.sample_x, a.sample_y)]), np.float32)
    return np.ascontiguousarray(np.moveaxis(raw.reshape(len(agents), 2, samples, steps), 1, -1), dtype=np.float64)


def _out_of_range(x_m: np.ndarray, y_m: np.ndarray) -> bool:
    """Some position is beyond MAX_ABS_POSITION_M (not a place in a local map frame)."""
    return bool(np.abs(x_m).max(initial=0.0) > MAX_ABS_POSITION_M or np.abs(y_m).max(initial=0.0) > MAX_ABS_POSITION_M)


def _not_psd(cxx: np.ndarray, cxy: np.ndarray, cyy: np.ndarray) -> np.ndarray:
    """Elementwise: the 2x2 covariance is not positive semi-definite (float32 rounding tolerated)."""
    return (cxx < 0.0) | (cyy < 0.0) | (cxy * cxy > cxx * cyy * (1.0 + 1e-3) + 1e-9)


def _first_problem(agents: list[AgentPrediction], steps: int, modes: int, samples: int) -> str:
    """The first agent's problem, in message order: the error that the batched checks found."""
    for a in agents:
        if problem := _agent_problem(a, steps, modes, samples):
            return problem
    return "prediction rejected: inconsistent agent forecasts"  # not reached: the batched checks are the same


def _agent_problem(a: AgentPrediction, steps: int, modes: int, samples: int) -> str | None:
    """What is wrong with one agent's forecast (the first problem, checks in their order), or None."""
    if a.id > MAX_AGENT_ID:
        return f"agent {a.id}: id above 2^63-1 (the core keeps ids as int64)"
    weights = _np(a.mode_weights).astype(np.float64)
    k = weights.shape[0]
    if k == 0 or (modes and k > modes):
        return f"agent {a.id}: {k} mode weights, expected 1 to num_modes = {modes}"
    fields = [_np(f) for f in _PER_STEP_FIELDS(a)]
    if any(f.shape[0] != k * steps for f in fields):
        return f"agent {a.id}: per-step arrays must hold num_modes*num_steps = {k * steps} values"
    mx, my, cxx, cxy, cyy = (f.astype(np.float64) for f in fields)
    if not all(np.isfinite(f).all() for f in (weights, mx, my, cxx, cxy, cyy)):
        return f"agent {a.id}: non-finite values in the forecast"
    if weights.min() < 0.0 or weights.sum() <= 0.0:
        return f"agent {a.id}: mode weights must be non-negative with a positive sum"
    if _not_psd(cxx, cxy, cyy).any():
        return f"agent {a.id}: covariances must be positive semi-definite"
    if _out_of_range(mx, my) or max(cxx.max(), cyy.max()) > MAX_VARIANCE_M2:
        return (f"agent {a.id}: forecast positions beyond {MAX_ABS_POSITION_M:g} m or variances above "
                f"{MAX_VARIANCE_M2:g} m^2")
    if not _footprint_ok(a.length, a.width):
        return f"agent {a.id}: footprint {a.length:.3g}x{a.width:.3g} m out of range"
    if samples and (len(a.sample_x) != samples * steps or len(a.sample_y) != samples * steps):
        return f"agent {a.id}: sample arrays must hold num_samples*num_steps values"
    if samples and not _samples_ok(_np(a.sample_x), _np(a.sample_y)):
        return f"agent {a.id}: samples non-finite or beyond {MAX_ABS_POSITION_M:g} m"
    return None


def _samples_ok(x_m: np.ndarray, y_m: np.ndarray) -> bool:
    return bool(np.isfinite(x_m).all() and np.isfinite(y_m).all() and not _out_of_range(x_m, y_m))


# --- plans ---------------------------------------------------------------------------------------

def plan_to_msg(plan: Plan, frame_id: str = "map") -> RiskAwarePlan:
    msg = RiskAwarePlan()
    msg.header.stamp = s_to_stamp(plan.stamp_s)
    msg.header.frame_id = frame_id
    msg.points = [
        TrajectoryPoint(time_from_start=s_to_duration(float(t)), x=float(s[0]), y=float(s[1]), yaw=float(s[2]),
                        velocity=float(s[3]), acceleration=float(s[4]))
        for t, s in zip(plan.times_s, plan.states, strict=True)
    ]
    msg.risk_measure = plan.risk_measure
    msg.risk_level = float(plan.risk_level)
    msg.risk = float(plan.risk)
    msg.expected_cost = float(plan.expected_cost)
    msg.value_at_risk = float(plan.value_at_risk)
    msg.status = RiskAwarePlan.STATUS_OK if plan.ok else RiskAwarePlan.STATUS_FALLBACK
    msg.status_reason = plan.reason
    msg.planning_time = float(plan.planning_time_s)
    msg.num_candidates = int(plan.num_candidates)
    msg.num_scenarios = int(plan.num_scenarios)
    msg.num_agents = int(plan.num_agents)
    if math.isfinite(plan.prediction_stamp_s):
        msg.prediction_stamp = s_to_stamp(plan.prediction_stamp_s)
    return msg


def plan_from_msg(msg: RiskAwarePlan) -> Plan:
    times = np.array([duration_to_s(p.time_from_start) for p in msg.points])
    states = np.array([[p.x, p.y, p.yaw, p.velocity, p.acceleration] for p in msg.points]).reshape(-1, 5)
    return Plan(stamp_s=stamp_to_s(msg.header.stamp), times_s=times, states=states, risk_measure=msg.risk_measure,
                risk_level=msg.risk_level, risk=msg.risk, expected_cost=msg.expected_cost,
                value_at_risk=msg.value_at_risk, ok=msg.status == RiskAwarePlan.STATUS_OK, reason=msg.status_reason,
                planning_time_s=msg.planning_time, num_candidates=msg.num_candidates,
                num_scenarios=msg.num_scenarios, num_agents=msg.num_agents,
                prediction_stamp_s=stamp_to_s(msg.prediction_stamp) if msg.prediction_stamp != Time() else math.nan)


def plan_to_path(plan: Plan, frame_id: str = "map") -> Path:
    path = Path()
    path.header.stamp = s_to_stamp(plan.stamp_s)
    path.header.frame_id = frame_id
    for t, s in zip(plan.times_s, plan.states, strict=True):
        pose = PoseStamped()
        pose.header.stamp = s_to_stamp(plan.stamp_s + float(t))
        pose.header.frame_id = frame_id
        pose.pose.position.x, pose.pose.position.y = float(s[0]), float(s[1])
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = yaw_to_quaternion(float(s[2]))
        path.poses.append(pose)
    return path


# --- ego odometry ----------------------------------------------------------------------------------

def ego_to_odometry(ego: EgoState, frame_id: str = "map", child_frame_id: str = "base_link") -> Odometry:
    msg = Odometry()
    msg.header.stamp = s_to_stamp(ego.stamp_s)
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(ego.x_m), float(ego.y_m)
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = yaw_to_quaternion(ego.yaw_rad)
    msg.twist.twist.linear.x = float(ego.v_mps)  # body frame (REP 105: twist in child_frame_id)
    msg.twist.twist.angular.z = 0.0
    return msg


def odometry_to_ego(msg: Odometry, length_m: float = 4.5, width_m: float = 1.8) -> EgoState:
    """Raises ValueError on non-finite or out-of-range pose or speed."""
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    yaw = quaternion_to_yaw(o.x, o.y, o.z, o.w)
    v = math.hypot(msg.twist.twist.linear.x, msg.twist.twist.linear.y)
    if not all(math.isfinite(x) for x in (p.x, p.y, yaw, v)):
        raise ValueError("odometry holds non-finite pose or twist")
    if max(abs(p.x), abs(p.y)) > MAX_ABS_POSITION_M or v > MAX_SPEED_MPS:
        raise ValueError(f"odometry position ({p.x:.3g}, {p.y:.3g}) m or speed {v:.3g} m/s out of range")
    return EgoState(stamp_s=stamp_to_s(msg.header.stamp), x_m=p.x, y_m=p.y, yaw_rad=yaw,
                    v_mps=math.copysign(v, msg.twist.twist.linear.x or 1.0), length_m=length_m, width_m=width_m)
