"""Deterministic, fully populated instances of every custom message (shared by both test processes)."""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Duration, Time

from rap_planner.msg import (
    AgentPrediction,
    PredictionArray,
    RiskAwarePlan,
    TrackedAgent,
    TrackedAgentArray,
    TrajectoryPoint,
)


def _f32(values) -> array.array:
    return array.array("f", np.asarray(values, dtype=np.float32).tobytes())


def samples() -> dict[str, object]:
    agent = TrackedAgent(id=2**40 + 7, classification=TrackedAgent.CLASS_TRUCK, x=12.5, y=-3.25, yaw=0.75, vx=21.5,
                         vy=-0.5, has_acceleration=True, ax=-1.25, ay=0.125, length=12.0, width=2.5,
                         covariance=np.arange(25, dtype=np.float64) * 0.01)
    tracked = TrackedAgentArray(agents=[agent, TrackedAgent(id=3, x=1.0, length=4.0, width=1.75)])
    tracked.header.stamp = Time(sec=1700000000, nanosec=123456789)
    tracked.header.frame_id = "map"

    k, t, s = 2, 3, 2
    pred_agent = AgentPrediction(id=7, length=4.5, width=1.875, mode_weights=_f32([0.75, 0.25]),
                                 mean_x=_f32(np.arange(k * t) + 0.5), mean_y=_f32(-np.arange(k * t) * 0.25),
                                 cov_xx=_f32(np.full(k * t, 0.5)), cov_xy=_f32(np.full(k * t, 0.125)),
                                 cov_yy=_f32(np.full(k * t, 0.25)), sample_x=_f32(np.arange(s * t) * 2.0),
                                 sample_y=_f32(np.arange(s * t) * -2.0))
    predictions = PredictionArray(dt=0.25, num_steps=t, num_modes=k, agents=[pred_agent], num_samples=s,
                                  sample_weights=_f32([0.375, 0.625]), sample_risk_level=0.875)
    predictions.header.stamp = Time(sec=42, nanosec=500000000)
    predictions.header.frame_id = "map"

    plan = RiskAwarePlan(risk_measure="cvar", risk_level=0.875, risk=3.5, expected_cost=1.25, value_at_risk=2.5,
                         status=RiskAwarePlan.STATUS_FALLBACK, fallback_reason=RiskAwarePlan.FALLBACK_STALE_PREDICTIONS,
                         note=RiskAwarePlan.NOTE_REFINEMENT_INFEASIBLE,  # never with a fallback: non-zero to be seen
                         status_reason="stale predictions (0.8 s old)",
                         planning_time=0.015625, num_candidates=512, num_scenarios=64)
    plan.points = [TrajectoryPoint(time_from_start=Duration(sec=i, nanosec=250000000), x=float(i), y=0.5 * i,
                                   yaw=0.125, velocity=10.0 - i, acceleration=-1.0) for i in range(4)]
    plan.header.stamp = Time(sec=43)
    plan.header.frame_id = "map"
    return {"tracked_agents": tracked, "predictions": predictions, "plan": plan,
            "trajectory_point": plan.points[1], "tracked_agent": agent, "agent_prediction": pred_agent}


def assert_msg_equal(a, b, path: str = "msg") -> None:
    """Field-by-field equality (byte comparison of re-serialised CDR is not reliable)."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if hasattr(a, "get_fields_and_field_types"):
        for name in a.get_fields_and_field_types():
            assert_msg_equal(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_msg_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, (array.array, np.ndarray)):
        assert np.array_equal(np.asarray(a), np.asarray(b)), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
