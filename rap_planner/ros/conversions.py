"""Message <-> core type conversion. No maths beyond reshaping; invalid messages raise ValueError."""

from __future__ import annotations

import array
import math

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


def tracked_agents_from_msg(msg: TrackedAgentArray) -> tuple[list[TrackedAgent], list[str]]:
    """Valid agents and one problem string per rejected agent (non-finite or impossible values)."""
    stamp_s = stamp_to_s(msg.header.stamp)
    agents: list[TrackedAgent] = []
    problems: list[str] = []
    for a in msg.agents:
        values = (a.x, a.y, a.yaw, a.vx, a.vy, a.length, a.width)
        if a.id > MAX_AGENT_ID:
            problems.append(f"agent {a.id}: id above 2^63-1 (the core keeps ids as int64)")
            continue
        if not all(math.isfinite(v) for v in values):
            problems.append(f"agent {a.id}: non-finite pose/velocity/size")
            continue
        if not (0.0 < a.length < 50.0 and 0.0 < a.width < 10.0):
            problems.append(f"agent {a.id}: footprint {a.length:.1f}x{a.width:.1f} m out of range")
            continue
        if max(abs(a.x), abs(a.y)) > MAX_ABS_POSITION_M or math.hypot(a.vx, a.vy) > MAX_SPEED_MPS:
            problems.append(f"agent {a.id}: position ({a.x:.3g}, {a.y:.3g}) m or speed out of range")
            continue
        has_acc = a.has_acceleration and math.isfinite(a.ax) and math.isfinite(a.ay)
        agents.append(TrackedAgent(agent_id=int(a.id), stamp_s=stamp_s, x_m=a.x, y_m=a.y, yaw_rad=a.yaw,
                                   vx_mps=a.vx, vy_mps=a.vy, length_m=float(a.length), width_m=float(a.width),
                                   ax_mps2=a.ax if has_acc else 0.0, ay_mps2=a.ay if has_acc else 0.0,
                                   classification=int(a.classification)))
    return agents, problems


# --- predictions --------------------------------------------------------------------------------

def forecast_set_to_msg(forecasts: ForecastSet, frame_id: str = "map") -> PredictionArray:
    msg = PredictionArray()
    msg.header.stamp = s_to_stamp(forecasts.stamp_s)
    msg.header.frame_id = frame_id
    msg.dt = float(forecasts.dt_s)
    msg.num_steps = int(forecasts.num_steps)
    msg.num_modes = max((int(f.weights.shape[0]) for f in forecasts.agents), default=0)
    num_samples = 0
    for f in forecasts.agents:
        out = AgentPrediction(id=int(f.agent_id), length=float(f.length_m), width=float(f.width_m))
        out.mode_weights = _f32(f.weights)
        out.mean_x = _f32(f.means_m[..., 0].ravel())
        out.mean_y = _f32(f.means_m[..., 1].ravel())
        out.cov_xx = _f32(f.covariances_m2[..., 0, 0].ravel())
        out.cov_xy = _f32(f.covariances_m2[..., 0, 1].ravel())
        out.cov_yy = _f32(f.covariances_m2[..., 1, 1].ravel())
        if f.samples_m is not None:
            num_samples = f.samples_m.shape[0]
            out.sample_x = _f32(f.samples_m[..., 0].ravel())
            out.sample_y = _f32(f.samples_m[..., 1].ravel())
        msg.agents.append(out)
    if forecasts.sample_weights is not None and num_samples:
        msg.num_samples = num_samples
        msg.sample_weights = _f32(forecasts.sample_weights)
        msg.sample_risk_level = float(forecasts.sample_risk_level)
    return msg


def forecast_set_from_msg(msg: PredictionArray) -> ForecastSet:
    """Raises ValueError naming the first inconsistency (array lengths, non-finite values, dt, covariances)."""
    steps, modes, samples = int(msg.num_steps), int(msg.num_modes), int(msg.num_samples)
    if not (math.isfinite(msg.dt) and msg.dt > 0.0):
        raise ValueError(f"prediction dt {msg.dt} is not a positive number")
    if steps == 0 and msg.agents:
        raise ValueError("prediction has agents but num_steps is 0")
    if steps > MAX_FORECAST_STEPS:
        raise ValueError(f"prediction num_steps {steps} is above {MAX_FORECAST_STEPS}")
    agents = []
    for a in msg.agents:
        if a.id > MAX_AGENT_ID:
            raise ValueError(f"agent {a.id}: id above 2^63-1 (the core keeps ids as int64)")
        weights = _np(a.mode_weights).astype(np.float64)
        k = weights.shape[0]
        if k == 0 or (modes and k > modes):
            raise ValueError(f"agent {a.id}: {k} mode weights, expected 1 to num_modes = {modes}")
        fields = [_np(getattr(a, n)) for n in ("mean_x", "mean_y", "cov_xx", "cov_xy", "cov_yy")]
        if any(f.shape[0] != k * steps for f in fields):
            raise ValueError(f"agent {a.id}: per-step arrays must hold num_modes*num_steps = {k * steps} values")
        mx, my, cxx, cxy, cyy = (f.astype(np.float64).reshape(k, steps) for f in fields)
        if not all(np.isfinite(f).all() for f in (weights, mx, my, cxx, cxy, cyy)):
            raise ValueError(f"agent {a.id}: non-finite values in the forecast")
        if weights.min() < 0.0 or weights.sum() <= 0.0:
            raise ValueError(f"agent {a.id}: mode weights must be non-negative with a positive sum")
        if cxx.min() < 0.0 or cyy.min() < 0.0 or np.any(cxy * cxy > cxx * cyy * (1.0 + 1e-3) + 1e-9):
            raise ValueError(f"agent {a.id}: covariances must be positive semi-definite")
        if not (0.0 < a.length < 50.0 and 0.0 < a.width < 10.0):
            raise ValueError(f"agent {a.id}: footprint {a.length:.3g}x{a.width:.3g} m out of range")
        cov = np.stack([np.stack([cxx, cxy], -1), np.stack([cxy, cyy], -1)], -2)
        samples_m = None
        if samples:
            sx, sy = _np(a.sample_x), _np(a.sample_y)
            if sx.shape[0] != samples * steps or sy.shape[0] != samples * steps:
                raise ValueError(f"agent {a.id}: sample arrays must hold num_samples*num_steps values")
            samples_m = np.stack([sx.reshape(samples, steps), sy.reshape(samples, steps)], -1).astype(np.float64)
        agents.append(AgentForecast(agent_id=int(a.id), weights=weights / weights.sum(),
                                    means_m=np.stack([mx, my], -1), covariances_m2=cov, length_m=float(a.length),
                                    width_m=float(a.width), samples_m=samples_m))
    sample_weights = None
    if samples:
        sample_weights = _np(msg.sample_weights).astype(np.float64)
        if sample_weights.shape[0] != samples or not np.isfinite(sample_weights).all() or sample_weights.sum() <= 0:
            raise ValueError("sample_weights must hold num_samples finite values with a positive sum")
        sample_weights = sample_weights / sample_weights.sum()
    return ForecastSet(stamp_s=stamp_to_s(msg.header.stamp), dt_s=float(msg.dt), num_steps=steps, agents=agents,
                       sample_weights=sample_weights, sample_risk_level=float(msg.sample_risk_level))


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
    return msg


def plan_from_msg(msg: RiskAwarePlan) -> Plan:
    times = np.array([duration_to_s(p.time_from_start) for p in msg.points])
    states = np.array([[p.x, p.y, p.yaw, p.velocity, p.acceleration] for p in msg.points]).reshape(-1, 5)
    return Plan(stamp_s=stamp_to_s(msg.header.stamp), times_s=times, states=states, risk_measure=msg.risk_measure,
                risk_level=msg.risk_level, risk=msg.risk, expected_cost=msg.expected_cost,
                value_at_risk=msg.value_at_risk, ok=msg.status == RiskAwarePlan.STATUS_OK, reason=msg.status_reason,
                planning_time_s=msg.planning_time, num_candidates=msg.num_candidates,
                num_scenarios=msg.num_scenarios)


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
