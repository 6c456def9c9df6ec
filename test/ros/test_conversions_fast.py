"""The batched message conversions: exact round trips with mixed mode counts, and every check still names its agent.

forecast_set_from_msg / forecast_set_to_msg / tracked_agents_from_msg convert all agents in a few numpy passes and
build messages and tracks without their slow constructors; these tests pin what must not change with that.
"""

from __future__ import annotations

import array
import dataclasses
import math

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from rap_planner.core.types import AgentForecast, FallbackReason, ForecastSet, Plan, TrackedAgent
from rap_planner.core.validation import MAX_AGENT_ID
from rap_planner.msg import AgentPrediction, PredictionArray, TrackedAgentArray
from rap_planner.msg import TrackedAgent as TrackedAgentMsg
from rap_planner.ros.conversions import (
    forecast_set_from_msg,
    forecast_set_to_msg,
    plan_from_msg,
    plan_to_msg,
    tracked_agents_from_msg,
)

STEPS = 25
MODES = (1, 6, 2, 1, 3, 9, 1, 6)  # interleaved, so a conversion grouped by mode count must restore the order


def agent(agent_id: int, k: int, rng: np.random.Generator, samples: int = 0) -> AgentForecast:
    t = 0.2 * np.arange(1, STEPS + 1)
    means = rng.uniform(-1e3, 1e3, 2) + rng.normal(0.0, 15.0, (k, 1, 2)) * t[None, :, None]
    sx, sy, rho = rng.uniform(0.1, 3.0, (k, STEPS)) * t, rng.uniform(0.1, 3.0, (k, STEPS)) * t, rng.uniform(-0.9, 0.9)
    cov = np.empty((k, STEPS, 2, 2))
    cov[..., 0, 0], cov[..., 1, 1] = sx**2, sy**2
    cov[..., 0, 1] = cov[..., 1, 0] = rho * sx * sy
    return AgentForecast(agent_id, rng.dirichlet(np.ones(k)), means, cov, float(rng.uniform(3.5, 5.0)),
                         float(rng.uniform(1.6, 2.0)),
                         means[0] + rng.normal(0.0, 1.0, (samples, STEPS, 2)) if samples else None)


def forecasts(samples: int = 0, modes: tuple[int, ...] = MODES, seed: int = 0) -> ForecastSet:
    rng = np.random.default_rng(seed)
    agents = [agent(100 + 3 * i, k, rng, samples) for i, k in enumerate(modes)]
    return ForecastSet(1000.25, 0.2, STEPS, agents, rng.uniform(0.5, 1.5, samples) if samples else None,
                       0.3 if samples else 0.0)


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).ravel()


def received(fs: ForecastSet) -> PredictionArray:
    """The message as a subscriber gets it (deserialised), which also proves the built messages serialise."""
    return deserialize_message(serialize_message(forecast_set_to_msg(fs)), PredictionArray)


# --- forecast_set_to_msg --------------------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [0, 4])
def test_every_field_is_the_agents_own_float32_values(samples):
    fs = forecasts(samples)
    msg = forecast_set_to_msg(fs)
    assert [a.id for a in msg.agents] == [f.agent_id for f in fs.agents]
    assert (msg.num_steps, msg.num_modes, msg.num_samples) == (STEPS, max(MODES), samples)
    for f, a in zip(fs.agents, msg.agents, strict=True):
        expected = {"mode_weights": f.weights, "mean_x": f.means_m[..., 0], "mean_y": f.means_m[..., 1],
                    "cov_xx": f.covariances_m2[..., 0, 0], "cov_xy": f.covariances_m2[..., 0, 1],
                    "cov_yy": f.covariances_m2[..., 1, 1],
                    "sample_x": f.samples_m[..., 0] if samples else [],
                    "sample_y": f.samples_m[..., 1] if samples else []}
        for name, values in expected.items():
            field = getattr(a, name)
            assert isinstance(field, array.array) and field.typecode == "f", name
            assert field.tobytes() == f32(values).tobytes(), name
        assert (type(a.id), type(a.length), type(a.width)) == (int, float, float)
        assert a.length == f.length_m and a.width == f.width_m


def test_built_messages_equal_constructed_ones_and_own_their_arrays():
    msg = forecast_set_to_msg(forecasts(samples=2))
    for a in msg.agents:
        fields = {n: getattr(a, n) for n in AgentPrediction.get_fields_and_field_types()}
        assert a == AgentPrediction(**fields) and repr(a) == repr(AgentPrediction(**fields))
    first, second = msg.agents[0], msg.agents[1]
    first.mean_x[0] = 12345.0  # arrays are per message, not views of one buffer
    assert second.mean_x[0] != 12345.0
    with pytest.raises(AttributeError):
        first.no_such_field = 1.0


def test_agents_of_different_step_counts_still_convert():
    fs = forecasts(modes=(2, 1))
    short = fs.agents[1]
    fs.agents[1] = dataclasses.replace(short, means_m=short.means_m[:, :5], covariances_m2=short.covariances_m2[:, :5])
    msg = forecast_set_to_msg(fs)
    assert [len(a.mean_x) for a in msg.agents] == [2 * STEPS, 5]
    assert msg.agents[1].cov_yy.tobytes() == f32(short.covariances_m2[:, :5, 1, 1]).tobytes()


# --- forecast_set_from_msg ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [0, 3])
def test_mixed_mode_counts_round_trip_exactly(samples):
    fs = forecasts(samples)
    back = forecast_set_from_msg(received(fs))
    assert [f.agent_id for f in back.agents] == [f.agent_id for f in fs.agents]
    assert (back.stamp_s, back.num_steps) == (fs.stamp_s, fs.num_steps) and back.dt_s == pytest.approx(fs.dt_s)
    for f, b in zip(fs.agents, back.agents, strict=True):
        k = len(f.weights)
        w32 = f32(f.weights).astype(np.float64)
        expected = {"weights": w32 / w32.sum(), "means_m": f.means_m.astype(np.float32).astype(np.float64),
                    "covariances_m2": f.covariances_m2.astype(np.float32).astype(np.float64)}
        if samples:
            expected["samples_m"] = f.samples_m.astype(np.float32).astype(np.float64)
        else:
            assert b.samples_m is None
        for name, values in expected.items():
            got = getattr(b, name)
            assert got.dtype == np.float64 and got.flags.c_contiguous, name
            np.testing.assert_array_equal(got, values, err_msg=name)
        assert b.means_m.shape == (k, STEPS, 2) and b.covariances_m2.shape == (k, STEPS, 2, 2)
        assert (b.length_m, b.width_m) == (float(np.float32(f.length_m)), float(np.float32(f.width_m)))
        assert type(b.agent_id) is int and type(b.length_m) is float
    if samples:
        sw = f32(fs.sample_weights).astype(np.float64)
        np.testing.assert_array_equal(back.sample_weights, sw / sw.sum())
    # A second trip changes nothing: the set is float32-exact now.
    again = forecast_set_from_msg(received(back))
    for b, c in zip(back.agents, again.agents, strict=True):
        np.testing.assert_array_equal(b.means_m, c.means_m)
        np.testing.assert_array_equal(b.covariances_m2, c.covariances_m2)


def test_no_agents_and_empty_fields():
    back = forecast_set_from_msg(received(ForecastSet(5.0, 0.1, 10, [])))
    assert back.agents == [] and back.sample_weights is None and back.num_steps == 10


def prediction(agent_id: int = 7, k: int = 2, **fields) -> AgentPrediction:
    """A valid K-mode forecast message; ``fields`` replace arrays (lists) or id, length, width."""
    n = k * STEPS
    values = {"mode_weights": [1.0 / k] * k, "mean_x": list(np.linspace(0.0, 100.0, n)), "mean_y": [3.5] * n,
              "cov_xx": [1.0] * n, "cov_xy": [0.2] * n, "cov_yy": [0.5] * n, "sample_x": [], "sample_y": []}
    values.update(fields)
    out = AgentPrediction(id=values.pop("id", agent_id), length=values.pop("length", 4.5),
                          width=values.pop("width", 1.8))
    for name, value in values.items():
        setattr(out, name, array.array("f", f32(value).tobytes()))
    return out


def message(agents: list[AgentPrediction], num_modes: int = 6, num_samples: int = 0,
            sample_weights=()) -> PredictionArray:
    return PredictionArray(dt=0.2, num_steps=STEPS, num_modes=num_modes, agents=agents, num_samples=num_samples,
                           sample_weights=array.array("f", f32(sample_weights).tobytes()))


def good(i: int) -> AgentPrediction:
    return prediction(i, k=1 + i % 3)


N = 2 * STEPS  # values per field of a 2-mode agent
BAD_AGENTS = [
    ({"id": MAX_AGENT_ID + 1}, r"agent 9223372036854775808: id above 2\^63-1"),
    ({"id": 2**64 - 1}, r"agent 18446744073709551615: id above 2\^63-1"),
    ({"mode_weights": []}, r"agent 7: 0 mode weights, expected 1 to num_modes = 6"),
    ({"mode_weights": [0.125] * 8, "mean_x": [0.0] * 8 * STEPS}, r"agent 7: 8 mode weights, expected 1 to num_modes"),
    ({"mean_x": [0.0] * (N - 1)}, r"agent 7: per-step arrays must hold num_modes\*num_steps = 50 values"),
    ({"cov_yy": [1.0] * (N + 1)}, r"agent 7: per-step arrays must hold"),
    ({"mode_weights": [1.0]}, r"agent 7: per-step arrays must hold num_modes\*num_steps = 25 values"),
    ({"mean_y": [0.0] * (N - 1) + [math.nan]}, r"agent 7: non-finite values in the forecast"),
    ({"cov_xy": [math.inf] + [0.0] * (N - 1)}, r"agent 7: non-finite values in the forecast"),
    ({"mode_weights": [math.nan, 1.0]}, r"agent 7: non-finite values in the forecast"),
    ({"mode_weights": [-0.5, 1.5]}, r"agent 7: mode weights must be non-negative with a positive sum"),
    ({"mode_weights": [0.0, 0.0]}, r"agent 7: mode weights must be non-negative with a positive sum"),
    ({"cov_xx": [-1.0] * N}, r"agent 7: covariances must be positive semi-definite"),
    ({"cov_xy": [0.0] * (N - 1) + [0.8]}, r"agent 7: covariances must be positive semi-definite"),
    ({"length": -4.0}, r"agent 7: footprint -4x1.8 m out of range"),
    ({"width": math.nan}, r"agent 7: footprint 4.5xnan m out of range"),
    ({"length": 60.0}, r"agent 7: footprint 60x1.8 m out of range"),
]


@pytest.mark.parametrize("fields, match", BAD_AGENTS)
@pytest.mark.parametrize("position", [0, 3, 5])
def test_each_check_still_raises_and_names_the_agent(fields, match, position):
    agents = [good(i) for i in range(1, 6)]
    agents.insert(position, prediction(**fields))
    with pytest.raises(ValueError, match=match):
        forecast_set_from_msg(message(agents))


def test_samples_and_sample_weights_are_checked():
    samples = 3
    ok = {"sample_x": [1.0] * samples * STEPS, "sample_y": [2.0] * samples * STEPS}
    weights = [1.0, 2.0, 1.0]
    good_set = forecast_set_from_msg(message([prediction(1, **ok), prediction(2, **ok)], num_samples=samples,
                                             sample_weights=weights))
    np.testing.assert_array_equal(good_set.agents[1].samples_m[..., 1], 2.0)
    assert good_set.agents[0].samples_m.shape == (samples, STEPS, 2)
    np.testing.assert_array_equal(good_set.sample_weights, [0.25, 0.5, 0.25])
    short = dict(ok, sample_y=[2.0] * (samples * STEPS - 1))
    with pytest.raises(ValueError, match=r"agent 2: sample arrays must hold num_samples\*num_steps values"):
        forecast_set_from_msg(message([prediction(1, **ok), prediction(2, **short)], num_samples=samples,
                                      sample_weights=weights))
    for bad in ([1.0, 2.0], [1.0, math.nan, 1.0], [0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="sample_weights must hold num_samples finite values"):
            forecast_set_from_msg(message([prediction(1, **ok)], num_samples=samples, sample_weights=bad))


@pytest.mark.parametrize("agents, match", [
    # the earlier agent's value problem wins over a later agent's wrong array length or id
    ([good(1), prediction(2, cov_xx=[math.nan] * N), good(3), prediction(4, mean_x=[])], "agent 2: non-finite"),
    ([prediction(2, length=0.0), prediction(4, id=2**64 - 1)], "agent 2: footprint"),
    ([good(1), prediction(4, id=2**64 - 1), prediction(2, mode_weights=[-1.0, 2.0])], r"agent 18446744073709551615"),
    # within one agent the checks keep their order
    ([prediction(5, cov_xy=[9.0] * N, length=-1.0, mode_weights=[0.0, 0.0])], "agent 5: mode weights"),
    ([prediction(5, cov_xy=[9.0] * N, length=-1.0)], "agent 5: covariances"),
])
def test_the_first_problem_in_message_order_is_named(agents, match):
    with pytest.raises(ValueError, match=match):
        forecast_set_from_msg(message(agents))


def test_header_checks():
    with pytest.raises(ValueError, match="num_steps 1001 is above"):
        forecast_set_from_msg(PredictionArray(dt=0.2, num_steps=1001))
    with pytest.raises(ValueError, match="dt nan is not a positive number"):
        forecast_set_from_msg(PredictionArray(dt=math.nan, num_steps=STEPS))
    with pytest.raises(ValueError, match="agents but num_steps is 0"):
        forecast_set_from_msg(PredictionArray(dt=0.2, num_steps=0, agents=[good(1)]))
    for dt in (1e-6, 3600.0):
        with pytest.raises(ValueError, match=r"dt .* s is outside \[0.001, 10\] s"):
            forecast_set_from_msg(PredictionArray(dt=dt, num_steps=STEPS, agents=[good(1)]))


def test_positions_and_spreads_beyond_any_map_are_rejected():
    with pytest.raises(ValueError, match="agent 3: forecast positions beyond 1e.07 m"):
        forecast_set_from_msg(message([good(1), prediction(3, mean_x=np.full(2 * STEPS, 3e38))]))
    with pytest.raises(ValueError, match=r"agent 4: forecast variances above 1e\+08 m\^2"):
        forecast_set_from_msg(message([prediction(4, cov_xx=np.full(2 * STEPS, 3e38))]))
    samples = {"sample_x": np.zeros(2 * STEPS), "sample_y": np.full(2 * STEPS, -2e7)}
    with pytest.raises(ValueError, match="agent 5: samples non-finite or beyond"):
        forecast_set_from_msg(message([prediction(5, **samples)], num_samples=2, sample_weights=[0.5, 0.5]))


def test_an_agent_forecast_twice_is_rejected():
    with pytest.raises(ValueError, match="agent 2: id appears more than once"):
        forecast_set_from_msg(message([good(1), good(2), good(3), good(2)]))


def test_num_modes_zero_means_any_mode_count():
    back = forecast_set_from_msg(message([prediction(1, k=9), prediction(2, k=1)], num_modes=0))
    assert [len(f.weights) for f in back.agents] == [9, 1]


# --- tracked_agents_from_msg --------------------------------------------------------------------------------------


def track(agent_id: int = 1, **fields) -> TrackedAgentMsg:
    values = dict(id=agent_id, classification=2, x=1200.5, y=-830.25, yaw=0.3, vx=20.0, vy=-1.5,
                  has_acceleration=True, ax=0.5, ay=-0.25, length=4.5, width=1.8)
    values.update(fields)
    return TrackedAgentMsg(**values)


def tracks(*agents: TrackedAgentMsg) -> TrackedAgentArray:
    msg = TrackedAgentArray(agents=list(agents))
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000, 500_000_000
    return msg


def test_tracks_equal_constructed_tracked_agents():
    agents, problems = tracked_agents_from_msg(tracks(track(1), track(2, has_acceleration=False),
                                                      track(3, ax=math.nan)))
    assert problems == []
    expected = TrackedAgent(agent_id=1, stamp_s=1000.5, x_m=1200.5, y_m=-830.25, yaw_rad=0.3, vx_mps=20.0,
                            vy_mps=-1.5, length_m=4.5, width_m=1.8, ax_mps2=0.5, ay_mps2=-0.25, classification=2)
    assert agents[0] == expected and hash(agents[0]) == hash(expected) and repr(agents[0]) == repr(expected)
    assert [type(getattr(agents[0], f.name)) for f in dataclasses.fields(TrackedAgent)] == [
        type(getattr(expected, f.name)) for f in dataclasses.fields(TrackedAgent)]
    assert agents[1] == dataclasses.replace(expected, agent_id=2, ax_mps2=0.0, ay_mps2=0.0)
    assert agents[2] == dataclasses.replace(expected, agent_id=3, ax_mps2=0.0, ay_mps2=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        agents[0].x_m = 0.0


@pytest.mark.parametrize("fields, accepted", [
    ({"vx": 1000.0, "vy": 0.0}, True),  # at the limits: the quick screen defers to the full checks
    ({"vx": 600.0, "vy": 800.0}, True),
    ({"vx": 600.0, "vy": 800.001}, False),
    ({"vx": -1e200}, False),
    ({"x": 1e7, "y": -1e7}, True),
    ({"x": 1e7 + 1.0}, False),
    ({"id": MAX_AGENT_ID}, True),
    ({"id": MAX_AGENT_ID + 1}, False),
    ({"length": 49.99, "width": 9.99}, True),
    ({"length": 50.0}, False),
    ({"width": 0.0}, False),
    ({"yaw": math.inf}, False),
    ({"y": math.nan}, False),
    ({"vy": -math.inf}, False),
    ({"ax": math.inf, "ay": math.nan}, True),  # ignored, as when has_acceleration is false
])
def test_limits_of_the_track_checks(fields, accepted):
    middle = fields.get("id", 6)
    agents, problems = tracked_agents_from_msg(tracks(track(5), track(6, **fields), track(7)))
    assert [a.agent_id for a in agents] == ([5, middle, 7] if accepted else [5, 7])
    assert len(problems) == (0 if accepted else 1)
    if not accepted:
        assert problems[0].startswith(f"agent {middle}: ")


def test_track_problems_name_the_agent_the_value_and_the_limit():
    _, problems = tracked_agents_from_msg(tracks(track(1, id=2**64 - 1), track(2, yaw=math.nan),
                                                 track(3, length=80.0), track(4, x=3e7), track(5, vx=2e3)))
    assert problems == ["agent 18446744073709551615: id above 2^63-1 (the core keeps ids as int64)",
                        "agent 2: non-finite pose/velocity/size",
                        "agent 3: footprint 80x1.8 m out of range (length 0 to 50 m, width 0 to 10 m)",
                        "agent 4: position (3e+07, -830) m out of range (|x|, |y| <= 1e+07 m)",
                        "agent 5: speed 2e+03 m/s out of range (<= 1000 m/s)"]


def test_plans_carry_the_forecast_stamp_and_agent_count():
    states = np.zeros((3, 5))
    plan = Plan(stamp_s=12.5, times_s=np.array([0.0, 0.2, 0.4]), states=states, num_agents=37,
                prediction_stamp_s=12.45)
    back = plan_from_msg(deserialize_message(serialize_message(plan_to_msg(plan)), type(plan_to_msg(plan))))
    assert back.num_agents == 37 and math.isclose(back.prediction_stamp_s, 12.45, abs_tol=1e-9)
    fallback = plan_from_msg(plan_to_msg(Plan(stamp_s=3.0, times_s=np.zeros(1), states=np.zeros((1, 5)),
                                              fallback=FallbackReason.MISSING_PREDICTIONS)))
    assert math.isnan(fallback.prediction_stamp_s)  # no forecasts behind a fallback
