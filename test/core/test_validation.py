"""core.validation: per-agent problems in one fixed order, the same for the message layout and the dataclasses."""

from __future__ import annotations

import array
import dataclasses
import math
import re

import numpy as np
import pytest

from rap_planner.core.types import AgentForecast, ForecastSet
from rap_planner.core.validation import (
    MAX_AGENT_ID,
    MESSAGE_RULES,
    Field,
    FlatForecasts,
    InputProblem,
    check_flat_forecasts,
    check_forecast_set,
    check_tracks,
    sample_weights_problem,
    step_problem,
)

STEPS = 5
P = InputProblem


def state(**values: float) -> list[float]:
    """One track's x, y, yaw, vx, vy, length, width."""
    row = {"x": 10.0, "y": -3.5, "yaw": 0.1, "vx": 20.0, "vy": 0.5, "length": 4.5, "width": 1.8}
    row.update(values)
    return list(row.values())


def test_tracks_get_a_mask_and_the_first_problem_of_each_agent():
    rows = [({}, P.OK), ({"x": math.nan}, P.NON_FINITE), ({"length": 50.0}, P.BAD_FOOTPRINT),
            ({"width": 0.0}, P.BAD_FOOTPRINT), ({"y": -1e7 - 1.0}, P.POSITION_OUT_OF_RANGE),
            ({"vx": 600.0, "vy": 800.001}, P.SPEED_OUT_OF_RANGE), ({"vx": 600.0, "vy": 800.0}, P.OK),
            ({"x": 1e9, "length": -1.0}, P.BAD_FOOTPRINT),  # the footprint is checked before the position
            ({"yaw": math.inf, "x": 1e9}, P.NON_FINITE)]
    ids = list(range(len(rows)))
    checks = check_tracks(ids, np.array([state(**r) for r, _ in rows]))
    assert [P(p) for p in checks.problems] == [p for _, p in rows]
    np.testing.assert_array_equal(checks.ok, [p is P.OK for _, p in rows])
    assert checks.first_bad() == 1


def test_track_ids_must_fit_int64_and_that_comes_first():
    ids = [MAX_AGENT_ID, MAX_AGENT_ID + 1, -(2**63), 2**64 - 1]
    checks = check_tracks(ids, np.array([state(), state(), state(), state(x=math.nan)]))
    assert [P(p) for p in checks.problems] == [P.OK, P.BAD_ID, P.OK, P.BAD_ID]
    assert checks.describe(1) == f"agent {MAX_AGENT_ID + 1}: id above 2^63-1 (the core keeps ids as int64)"


def test_track_problems_are_worded_with_the_value_and_the_limit():
    checks = check_tracks([4, 5, 6], np.array([state(x=3e7), state(vx=2e3), state(length=80.0)]))
    assert checks.describe(0) == "agent 4: position (3e+07, -3.5) m out of range (|x|, |y| <= 1e+07 m)"
    assert checks.describe(1) == "agent 5: speed 2e+03 m/s out of range (<= 1000 m/s)"
    assert checks.describe(2) == "agent 6: footprint 80x1.8 m out of range (length 0 to 50 m, width 0 to 10 m)"


def test_no_tracks():
    checks = check_tracks([], np.zeros((0, 7)))
    assert checks.problems.shape == (0,) and checks.first_bad() is None


# --- forecasts: the same problems from both layouts ------------------------------------------------------------


def forecast(agent_id: int, k: int = 2, samples: int = 0, **changes) -> AgentForecast:
    t = np.arange(1, STEPS + 1, dtype=np.float64)
    means = np.stack([np.stack([10.0 * t + j, np.full(STEPS, 3.5 * j)], -1) for j in range(k)])
    cov = np.zeros((k, STEPS, 2, 2))
    cov[..., 0, 0], cov[..., 1, 1], cov[..., 0, 1], cov[..., 1, 0] = 1.0, 0.5, 0.25, 0.25
    a = AgentForecast(agent_id, np.full(k, 1.0 / k), means, cov, 4.5, 1.8,
                      means[0] + np.zeros((samples, STEPS, 2)) if samples else None)
    return dataclasses.replace(a, **changes)


def f32(values) -> array.array:
    return array.array("f", np.asarray(values, np.float32).tobytes())


def flat(fs: ForecastSet, num_modes: int = 0, num_samples: int = 0) -> FlatForecasts:
    """The set in the message layout (as forecast_set_to_msg writes it, without rclpy)."""
    means = [np.asarray(a.means_m) for a in fs.agents]
    covs = [np.asarray(a.covariances_m2) for a in fs.agents]
    samples = [np.zeros((0, 2)) if a.samples_m is None else np.asarray(a.samples_m) for a in fs.agents]
    return FlatForecasts(
        [a.agent_id for a in fs.agents], [f32(a.weights) for a in fs.agents],
        [[f32(m[..., 0]) for m in means], [f32(m[..., 1]) for m in means], [f32(c[..., 0, 0]) for c in covs],
         [f32(c[..., 0, 1]) for c in covs], [f32(c[..., 1, 1]) for c in covs]],
        [[f32(s[..., 0]) for s in samples], [f32(s[..., 1]) for s in samples]],
        [a.length_m for a in fs.agents], [a.width_m for a in fs.agents], fs.num_steps, num_modes, num_samples)


def bad_set() -> tuple[ForecastSet, list[InputProblem], list[Field]]:
    """One agent per problem (values exact in float32), and the problem and field each must get."""
    ok = forecast(1)
    cases = [
        (ok, P.OK, Field.NONE),
        (forecast(2, weights=np.array([math.nan, 1.0])), P.NON_FINITE, Field.MODE_WEIGHTS),
        (forecast(3, means_m=np.where(ok.means_m > 40.0, math.inf, ok.means_m)), P.NON_FINITE, Field.MEANS),
        (forecast(4, weights=np.zeros(0)), P.BAD_MODE_COUNT, Field.MODE_WEIGHTS),
        (forecast(5, means_m=ok.means_m[:, 1:]), P.BAD_SHAPE, Field.MEANS),
        (forecast(6, weights=np.array([-0.5, 1.5])), P.BAD_WEIGHTS, Field.MODE_WEIGHTS),
        (forecast(7, weights=np.zeros(2)), P.BAD_WEIGHTS, Field.MODE_WEIGHTS),
        (forecast(8, covariances_m2=ok.covariances_m2 * [[1.0, 4.0], [4.0, 1.0]]), P.NOT_PSD, Field.COVARIANCES),
        (forecast(9, means_m=ok.means_m + 2e7), P.POSITION_OUT_OF_RANGE, Field.MEANS),
        (forecast(10, covariances_m2=ok.covariances_m2 * 4e8), P.VARIANCE_OUT_OF_RANGE, Field.COVARIANCES),
        (forecast(11, length_m=math.nan), P.NON_FINITE, Field.FOOTPRINT),
        (forecast(12, width_m=12.0), P.BAD_FOOTPRINT, Field.FOOTPRINT),
        # several problems: the first in the order of the checks
        (forecast(13, weights=np.zeros(2), length_m=-1.0, covariances_m2=-ok.covariances_m2), P.BAD_WEIGHTS,
         Field.MODE_WEIGHTS),
        (forecast(14, means_m=np.full((2, STEPS - 1, 2), math.nan)), P.NON_FINITE, Field.MEANS),
        (forecast(MAX_AGENT_ID + 1, weights=np.zeros(2)), P.BAD_ID, Field.ID),
    ]
    return (ForecastSet(0.0, 0.2, STEPS, [a for a, _, _ in cases]), [p for _, p, _ in cases],
            [f for _, _, f in cases])


def test_both_layouts_find_the_same_first_problem_per_agent():
    fs, problems, fields = bad_set()
    for checks in (check_flat_forecasts(flat(fs)), check_forecast_set(fs, MESSAGE_RULES)):
        assert [P(p) for p in checks.problems] == problems
        assert [Field(f) for f in checks.fields] == fields
        assert checks.first_bad() == 1


def test_core_rules_only_ask_for_finite_values_and_consistent_shapes():
    fs, problems, _ = bad_set()
    checks = check_forecast_set(fs)
    lenient = {P.NOT_PSD, P.POSITION_OUT_OF_RANGE, P.VARIANCE_OUT_OF_RANGE, P.BAD_FOOTPRINT}
    assert [P(p) for p in checks.problems] == [P.OK if p in lenient else p for p in problems]
    huge = forecast(1, means_m=np.full((2, STEPS, 2), 1e308))  # finite values whose sum overflows
    assert P(check_forecast_set(ForecastSet(0.0, 0.2, STEPS, [huge])).problems[0]) is P.NON_FINITE


def test_repeated_ids_are_flagged_where_nothing_else_is():
    agents = [forecast(1), forecast(2), forecast(1), forecast(2, weights=np.zeros(2)), forecast(3)]
    fs = ForecastSet(0.0, 0.2, STEPS, agents)
    expected = [P.DUPLICATE_ID, P.OK, P.DUPLICATE_ID, P.BAD_WEIGHTS, P.OK]
    for checks in (check_flat_forecasts(flat(fs)), check_forecast_set(fs, MESSAGE_RULES)):
        assert [P(p) for p in checks.problems] == expected
    assert check_forecast_set(fs).problems[0] == P.OK  # the core rules allow them


def test_samples_must_share_one_shape_and_be_finite_and_in_range():
    agents = [forecast(1, samples=3), forecast(2, samples=3), forecast(3, samples=2), forecast(4, samples=3),
              forecast(5, samples=3)]
    agents[1].samples_m[1, 2, 0] = math.nan
    agents[3].samples_m[0, 0, 1] = -2e7
    fs = ForecastSet(0.0, 0.2, STEPS, agents)
    expected = [P.OK, P.NON_FINITE, P.BAD_SAMPLES, P.POSITION_OUT_OF_RANGE, P.OK]
    checks = check_forecast_set(fs, MESSAGE_RULES)
    assert [P(p) for p in checks.problems] == expected and checks.num_samples == 3
    flat_checks = check_flat_forecasts(flat(fs, num_samples=3))
    assert [P(p) for p in flat_checks.problems] == expected and flat_checks.samples_m is None  # one does not fit
    assert flat_checks.describe(2) == ("agent 3: sample arrays must hold num_samples*num_steps values (3*5, got 10 "
                                       "and 10)")
    assert flat_checks.describe(3) == "agent 4: samples non-finite or beyond 1e+07 m"


def test_the_message_layout_checks_mode_counts_and_array_lengths():
    fs = ForecastSet(0.0, 0.2, STEPS, [forecast(1, k=1), forecast(2, k=3), forecast(3, k=2)])
    f = flat(fs, num_modes=2)
    per_step = [list(field) for field in f.per_step]
    per_step[3][2] = per_step[3][2][:-1]  # agent 3's cov_xy one value short
    checks = check_flat_forecasts(dataclasses.replace(f, per_step=per_step))
    assert [P(p) for p in checks.problems] == [P.OK, P.BAD_MODE_COUNT, P.BAD_SHAPE]
    assert checks.describe(1) == "agent 2: 3 mode weights, expected 1 to num_modes = 2"
    assert checks.describe(2) == ("agent 3: per-step arrays must hold num_modes*num_steps = 10 values "
                                  "(mean/cov lengths 10, 10, 10, 9, 10)")
    # the agents whose arrays line up are decoded again (for the conversion)
    np.testing.assert_array_equal(checks.rows, [0, 1])
    np.testing.assert_array_equal(checks.moments[:, :STEPS], np.stack([
        fs.agents[0].means_m[0, :, 0], fs.agents[0].means_m[0, :, 1], np.ones(STEPS), np.full(STEPS, 0.25),
        np.full(STEPS, 0.5)]))


def test_forecast_problems_are_worded_with_the_limit():
    fs, _, _ = bad_set()
    checks = check_flat_forecasts(flat(fs))
    words = {i: checks.describe(i) for i in range(len(fs.agents))}
    assert words[1] == "agent 2: non-finite values in the forecast (mode_weights)"
    assert words[9] == "agent 10: forecast variances above 1e+08 m^2"
    assert words[11] == "agent 12: footprint 4.5x12 m out of range (length 0 to 50 m, width 0 to 10 m)"
    core = check_forecast_set(fs)
    assert core.describe(4) == ("invalid input: forecast of agent 5 has weights (2,), means (2, 4, 2), covariances "
                                "(2, 5, 2, 2); expected (K,), (K, 5, 2), (K, 5, 2, 2)")
    assert core.describe(10) == "non-finite input: forecast of agent 11 footprint"


def test_no_forecasts():
    fs = ForecastSet(0.0, 0.2, STEPS, [])
    assert check_forecast_set(fs).first_bad() is None
    checks = check_flat_forecasts(flat(fs, num_samples=4))
    assert checks.first_bad() is None and checks.samples_m is not None and checks.samples_m.shape == (0, 4, STEPS, 2)


@pytest.mark.parametrize("dt_s, steps, agents, words", [
    (0.2, 25, 3, None), (10.0, 1000, 1, None), (0.2, 0, 0, None),
    (math.nan, 25, 1, "dt nan is not a positive number"), (-0.1, 25, 1, "not a positive number"),
    (1e-4, 25, 1, r"dt 0.0001 s is outside \[0.001, 10\] s"), (0.2, 0, 1, "agents but num_steps is 0"),
    (0.2, 1001, 1, "num_steps 1001 is above 1000"),
])
def test_step_problems(dt_s, steps, agents, words):
    problem = step_problem(dt_s, steps, agents)
    if words is None:
        assert problem is None
    else:
        assert problem is not None and problem.kind is P.BAD_STEP and re.search(words, problem.words)


@pytest.mark.parametrize("weights, ok", [
    ([1.0, 2.0, 1.0], True), ([0.0, 0.0, 1e-300], True), ([1.0, 2.0], False), ([1.0, -0.5, 1.0], False),
    ([0.0, 0.0, 0.0], False), ([1.0, math.nan, 1.0], False), ([1e308, 1e308, 1e308], False),
])
def test_sample_weights(weights, ok):
    problem = sample_weights_problem(np.array(weights), 3)
    assert (problem is None) == ok
    if not ok:
        assert problem.kind is P.BAD_SAMPLE_WEIGHTS
        assert problem.words.startswith("sample_weights must hold num_samples finite values")
        assert "num_samples = 3" in problem.words
