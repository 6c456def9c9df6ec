"""Message <-> core type conversion. No maths beyond reshaping; invalid messages raise ValueError."""

from __future__ import annotations

import array
import itertools
import math
import operator

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path

from rap_planner.core.types import (
    AgentForecast,
    EgoState,
    FallbackReason,
    ForecastSet,
    Plan,
    PlanNote,
    PlanStatus,
    SafetyAction,
    TrackedAgent,
)
from rap_planner.core.validation import (
    MAX_ABS_POSITION_M,
    MAX_SPEED_MPS,
    FlatForecastChecks,
    check_flat_forecasts,
    check_tracks,
    flat_forecasts,
    sample_weights_problem,
    step_problem,
)
from rap_planner.msg import (
    AgentPrediction,
    PredictionArray,
    RiskAwarePlan,
    TrackedAgentArray,
    TrajectoryPoint,
)
from rap_planner.msg import TrackedAgent as TrackedAgentMsg


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


_TRACK_FIELDS = ("id", "classification", "x", "y", "yaw", "vx", "vy", "has_acceleration", "ax", "ay", "length",
                 "width")
_TRACK_VALUES = operator.attrgetter(*_TRACK_FIELDS)
_TRACK_STATE = [2, 3, 4, 5, 6, 10, 11]  # the columns of _TRACK_FIELDS that core.validation.check_tracks checks


def tracked_agents_from_msg(msg: TrackedAgentArray) -> tuple[list[TrackedAgent], list[str]]:
    """Valid agents and one problem string per rejected agent (``core.validation.check_tracks``).

    The message's values go into one array for the checks (200 agents at 20 Hz); a non-finite acceleration is
    ignored, as when ``has_acceleration`` is false.
    """
    stamp_s = stamp_to_s(msg.header.stamp)
    rows = list(map(_TRACK_VALUES, msg.agents))
    values = np.fromiter(itertools.chain.from_iterable(rows), np.float64, len(rows) * len(_TRACK_FIELDS)).reshape(
        len(rows), len(_TRACK_FIELDS))
    checks = check_tracks([r[0] for r in rows], values[:, _TRACK_STATE])
    with_acc = ((values[:, 7] != 0.0) & np.isfinite(values[:, 8]) & np.isfinite(values[:, 9])).tolist()
    agents = [TrackedAgent(int(aid), stamp_s, x, y, yaw, vx, vy, float(length), float(width), ax if has_acc else 0.0,
                           ay if has_acc else 0.0, int(classification))
              for (aid, classification, x, y, yaw, vx, vy, _, ax, ay, length, width), ok, has_acc
              in zip(rows, checks.ok.tolist(), with_acc, strict=True) if ok]
    return agents, [checks.describe(i) for i in np.flatnonzero(~checks.ok).tolist()]


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


def forecast_set_from_msg(msg: PredictionArray) -> ForecastSet:
    """Raises ValueError naming the first problem (``core.validation``: steps, then agents in message order).

    All agents are checked and converted in a few numpy passes over their concatenated fields (small numpy calls
    per agent took ~17 ms at 200 agents); the checks decode the values once, the conversion slices them.
    """
    steps, samples = int(msg.num_steps), int(msg.num_samples)
    if problem := step_problem(msg.dt, steps, len(msg.agents)):
        raise ValueError(problem.words)
    checks = check_flat_forecasts(flat_forecasts(msg))
    if (bad := checks.first_bad()) is not None:
        raise ValueError(checks.describe(bad))
    sample_weights = None
    if samples:
        sample_weights = _np(msg.sample_weights).astype(np.float64)
        if problem := sample_weights_problem(sample_weights, samples):
            raise ValueError(problem.words)
        sample_weights = sample_weights / sample_weights.sum()
    # dt travels as float32 (0.2 arrives as 0.20000000298): back to the microsecond the sender meant, so that
    # the nodes and the in-process pipeline draw scenarios at the same times
    return ForecastSet(stamp_s=stamp_to_s(msg.header.stamp), dt_s=round(float(msg.dt), 6), num_steps=steps,
                       agents=_agent_forecasts(checks), sample_weights=sample_weights,
                       sample_risk_level=float(msg.sample_risk_level))


def _agent_forecasts(checks: FlatForecastChecks) -> list[AgentForecast]:
    """The checked agents' forecasts; their arrays are views into one array per field over all agents."""
    flat, modes = checks.forecasts, checks.modes
    moments = checks.moments.reshape(5, int(modes.sum()), flat.num_steps)
    means = np.empty((*moments.shape[1:], 2))  # (sum K, T, 2)
    means[..., 0], means[..., 1] = moments[:2]
    covs = np.empty((*moments.shape[1:], 2, 2))
    covs[..., 0, 0], covs[..., 0, 1], covs[..., 1, 0], covs[..., 1, 1] = moments[2], moments[3], moments[3], moments[4]
    weights = _normalised(checks.weights, modes)
    ends = np.cumsum(modes)
    samples = checks.samples_m
    agents = zip(flat.agent_ids, flat.lengths_m, flat.widths_m, (ends - modes).tolist(), ends.tolist(), strict=True)
    return [AgentForecast(agent_id=int(agent_id), weights=weights[start:end], means_m=means[start:end],
                          covariances_m2=covs[start:end], length_m=float(length), width_m=float(width),
                          samples_m=None if samples is None else samples[i])
            for i, (agent_id, length, width, start, end) in enumerate(agents)]


def _normalised(weights: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Each agent's weights (consecutive, ``modes`` per agent) over their sum, summed as ``weights.sum()`` does:
    as rows of one array per mode count."""
    out = np.empty_like(weights)
    starts = np.cumsum(modes) - modes
    for k in np.unique(modes).tolist():
        index = starts[modes == k][:, None] + np.arange(k)
        rows = weights[index]
        out[index] = rows / rows.sum(axis=1, keepdims=True)
    return out


# --- plans ---------------------------------------------------------------------------------------

# The core enums and the message's constants are matched by name, never by copied numbers: a member without its
# constant fails here at import.
_STATUS_TO_MSG = {s: getattr(RiskAwarePlan, f"STATUS_{s.name}") for s in PlanStatus}
_FALLBACK_TO_MSG = {r: getattr(RiskAwarePlan, f"FALLBACK_{r.name}") for r in FallbackReason}
_FALLBACK_FROM_MSG = {code: r for r, code in _FALLBACK_TO_MSG.items()}
_NOTE_TO_MSG = {n: getattr(RiskAwarePlan, f"NOTE_{n.name}") for n in PlanNote}
_NOTE_FROM_MSG = {code: n for n, code in _NOTE_TO_MSG.items()}
_SAFETY_TO_MSG = {a: getattr(RiskAwarePlan, f"SAFETY_{a.name}") for a in SafetyAction}
_SAFETY_FROM_MSG = {code: a for a, code in _SAFETY_TO_MSG.items()}


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
    msg.status = _STATUS_TO_MSG[plan.status]
    msg.fallback_reason = _FALLBACK_TO_MSG[FallbackReason.UNSPECIFIED if plan.fallback is None else plan.fallback]
    msg.note = RiskAwarePlan.NOTE_NONE if plan.note is None else _NOTE_TO_MSG[plan.note]
    msg.safety = RiskAwarePlan.SAFETY_NONE if plan.safety is None else _SAFETY_TO_MSG[plan.safety]
    msg.status_reason = plan.reason
    msg.planning_time = float(plan.planning_time_s)
    msg.num_candidates = int(plan.num_candidates)
    msg.num_scenarios = int(plan.num_scenarios)
    msg.num_agents = int(plan.num_agents)
    if math.isfinite(plan.prediction_stamp_s):
        msg.prediction_stamp = s_to_stamp(plan.prediction_stamp_s)
    return msg


def plan_from_msg(msg: RiskAwarePlan) -> Plan:
    """Never raises on codes: any status but ok is a fallback, an unknown fallback code UNSPECIFIED, an unknown note
    or safety code none (``status_reason`` keeps the sender's detail)."""
    times = np.array([duration_to_s(p.time_from_start) for p in msg.points])
    fallback = (None if msg.status == _STATUS_TO_MSG[PlanStatus.OK]
                else _FALLBACK_FROM_MSG.get(msg.fallback_reason, FallbackReason.UNSPECIFIED))
    states = np.array([[p.x, p.y, p.yaw, p.velocity, p.acceleration] for p in msg.points]).reshape(-1, 5)
    return Plan(stamp_s=stamp_to_s(msg.header.stamp), times_s=times, states=states, risk_measure=msg.risk_measure,
                risk_level=msg.risk_level, risk=msg.risk, expected_cost=msg.expected_cost,
                value_at_risk=msg.value_at_risk, fallback=fallback, note=_NOTE_FROM_MSG.get(msg.note),
                safety=_SAFETY_FROM_MSG.get(msg.safety), reason=msg.status_reason,
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
