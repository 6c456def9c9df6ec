import dataclasses
import math

import numpy as np
import pytest

from rap_planner.core.candidates import plan_candidates
from rap_planner.core.costs import CostModel, CostWeights, agent_tracks
from rap_planner.core.planner import PlannerConfig, RiskAwarePlanner
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.risk import make_risk_measure
from rap_planner.core.scenarios import sample_scenarios
from rap_planner.core.scenes import didactic_scene
from rap_planner.core.types import AgentForecast, EgoState, FallbackReason, ForecastSet, Plan, PlanNote

CROSSING_X_M = 27.5
# The didactic scene's cost scale (RAP's example): a collision with the rare fast crosser is cheaper on
# average than yielding, so risk-neutral goes through and CVaR yields. Under the deployed weights (collision
# 20000, TTC 1000) the expected collision alone outweighs yielding and both levels yield.
DIDACTIC_WEIGHTS = CostWeights(collision=100.0, ttc=10.0)


def crossing_time_s(plan: Plan) -> float:
    """When the plan's front bumper reaches the crossing's near edge (interpolated)."""
    front = plan.states[:, 0] + 2.25
    return float(np.interp(CROSSING_X_M - 0.4, front, plan.times_s))


@pytest.fixture(scope="module")
def scene():
    return didactic_scene()


@pytest.fixture(scope="module")
def plans(scene):
    ego, forecasts, reference = scene
    planner = RiskAwarePlanner(PlannerConfig(risk_measure="cvar", risk_level=0.0, weights=DIDACTIC_WEIGHTS))
    neutral = planner.plan(ego, forecasts, reference, 0.0)
    planner.update_config(risk_level=0.9)  # the same planner, changed live
    averse = planner.plan(ego, forecasts, reference, 0.0)
    return neutral, averse


def test_didactic_risk_neutral_plan_keeps_its_speed(plans, scene):
    neutral, _ = plans
    ego = scene[0]
    assert neutral.ok, neutral.reason
    assert neutral.risk_level == 0.0
    assert neutral.states[:, 3].min() >= 0.95 * ego.v_mps
    assert crossing_time_s(neutral) < 2.6  # goes through before the fast crosser has left the lane


def test_didactic_cvar_plan_yields(plans, scene):
    neutral, averse = plans
    ego = scene[0]
    assert averse.ok, averse.reason
    assert averse.risk_level == 0.9
    assert averse.states[:, 3].min() <= 0.8 * ego.v_mps
    assert crossing_time_s(averse) > crossing_time_s(neutral) + 0.5
    assert averse.expected_cost > neutral.expected_cost  # it pays for yielding on average


def test_didactic_margin_is_clear_on_both_sides(scene):
    """The choice is not a coin toss: the losing option is worse by a factor, at both levels."""
    ego, forecasts, reference = scene
    config = PlannerConfig(weights=DIDACTIC_WEIGHTS)
    cands = plan_candidates(ego, reference, config.candidate_config(reference.speed_limit_mps))
    tracks = agent_tracks(sample_scenarios(forecasts, config.num_scenarios, config.seed, cands.times_s[1:]), reference)
    costs = CostModel(reference, config.weights, ego.v_mps, 0.0, ego.length_m, ego.width_m).evaluate(cands, tracks)
    slowest = cands.v_mps.min(axis=1)
    keep, yld = slowest >= 0.95 * ego.v_mps, slowest <= 0.8 * ego.v_mps
    cvar = make_risk_measure("cvar")
    neutral, averse = cvar.risk(costs, tracks.weights, 0.0), cvar.risk(costs, tracks.weights, 0.9)
    assert neutral[yld].min() > 1.5 * neutral[keep].min()
    assert averse[keep].min() > 1.4 * averse[yld].min()  # 1.45 since candidates no longer nudge 0.5 m off centre


def test_plans_are_deterministic_and_filled_in(scene):
    ego, forecasts, reference = scene
    config = PlannerConfig(risk_level=0.5)
    first = RiskAwarePlanner(config).plan(ego, forecasts, reference, 0.0)
    second = RiskAwarePlanner(config).plan(ego, forecasts, reference, 0.0)
    np.testing.assert_array_equal(first.states, second.states)
    assert first.states.shape == (26, 5) and first.times_s[-1] == pytest.approx(5.0)
    assert first.num_scenarios == 64 and first.num_candidates > 50
    assert first.expected_cost <= first.risk + 1e-9
    assert first.value_at_risk <= first.risk + 1e-9
    assert first.candidates_xy_m.shape[1:] == (26, 2) and len(first.candidates_risk) == len(first.candidates_xy_m)
    assert first.candidates_risk[0] == first.candidates_risk.min()
    assert first.planning_time_s > 0.0
    np.testing.assert_allclose(first.states[0, :2], [ego.x_m, ego.y_m], atol=1e-9)


@pytest.mark.parametrize("measure", ["mean", "var", "entropic", "worst"])
def test_every_risk_measure_plans(scene, measure):
    plan = RiskAwarePlanner(PlannerConfig(risk_measure=measure, risk_level=0.8, num_scenarios=16)).plan(
        *scene, 0.0
    )
    assert plan.ok, plan.reason
    assert plan.risk_measure == measure and math.isfinite(plan.risk)


def assert_braking_fallback(plan: Plan, fallback: FallbackReason) -> None:
    assert not plan.ok and plan.fallback is fallback, (plan.fallback, plan.reason)
    assert plan.reason  # the detail for people
    assert np.all(np.isfinite(plan.states))
    assert np.all(np.diff(plan.states[:, 3]) <= 1e-9)  # never speeds up
    np.testing.assert_allclose(plan.states[:, 1], plan.states[0, 1])  # stays in its lane (straight road)


def test_stale_or_missing_predictions_fall_back_to_braking(scene):
    ego, forecasts, reference = scene
    planner = RiskAwarePlanner(PlannerConfig(prediction_timeout_s=0.5))
    assert_braking_fallback(planner.plan(ego, forecasts, reference, now_s=2.0), FallbackReason.STALE_PREDICTIONS)
    assert_braking_fallback(planner.plan(ego, None, reference, now_s=2.0), FallbackReason.STALE_PREDICTIONS)
    assert_braking_fallback(RiskAwarePlanner().plan(ego, None, reference, 0.0), FallbackReason.MISSING_PREDICTIONS)
    later = dataclasses.replace(ego, stamp_s=0.3)
    assert planner.plan(later, None, reference, now_s=0.3).ok  # the last set is reused while fresh


def test_non_finite_inputs_fall_back(scene):
    ego, forecasts, reference = scene
    planner = RiskAwarePlanner()
    assert planner.plan(ego, forecasts, reference, 0.0).ok
    bad_ego = dataclasses.replace(ego, x_m=float("nan"))
    plan = planner.plan(bad_ego, forecasts, reference, 0.0)
    assert_braking_fallback(plan, FallbackReason.NON_FINITE_INPUT)
    np.testing.assert_allclose(plan.states[0, :2], [ego.x_m, ego.y_m])  # brakes from the last good pose
    crosser = dataclasses.replace(forecasts.agents[0])
    crosser.covariances_m2 = np.full_like(crosser.covariances_m2, np.inf)
    bad = ForecastSet(forecasts.stamp_s, forecasts.dt_s, forecasts.num_steps, [crosser])
    assert_braking_fallback(planner.plan(ego, bad, reference, 0.0), FallbackReason.INVALID_FORECAST)
    assert_braking_fallback(planner.plan(ego, forecasts, reference, float("nan")), FallbackReason.NON_FINITE_INPUT)


def test_each_unusable_input_has_its_fallback_reason(scene):
    ego, forecasts, reference = scene
    planner = RiskAwarePlanner(PlannerConfig(prediction_timeout_s=0.5))
    assert_braking_fallback(planner.plan(None, forecasts, reference, 0.0), FallbackReason.MISSING_EGO)
    flat = dataclasses.replace(ego, width_m=0.0)
    assert_braking_fallback(planner.plan(flat, forecasts, reference, 0.0), FallbackReason.INVALID_EGO_FOOTPRINT)
    ahead = dataclasses.replace(forecasts, stamp_s=forecasts.stamp_s + 1.0)
    assert_braking_fallback(planner.plan(ego, ahead, reference, 0.0), FallbackReason.FUTURE_PREDICTIONS)


def test_no_agents_plans_normally():
    reference = ReferencePath.straight(length_m=300.0, lanes=2, speed_limit_mps=15.0)
    ego = EgoState(stamp_s=0.0, x_m=20.0, y_m=0.0, yaw_rad=0.0, v_mps=12.0)
    plan = RiskAwarePlanner().plan(ego, ForecastSet(0.0, 0.2, 25, []), reference, 0.0)
    assert plan.ok, plan.reason
    assert plan.num_scenarios == 1
    assert plan.states[-1, 3] == pytest.approx(15.0, abs=0.5)  # speeds up to the limit
    assert abs(plan.states[-1, 1]) < 0.1  # and stays in its lane


def test_no_acceptable_candidate_falls_back(scene):
    plan = RiskAwarePlanner(PlannerConfig(max_acceptable_risk=1e-6)).plan(*scene, 0.0)
    assert_braking_fallback(plan, FallbackReason.NO_ACCEPTABLE_CANDIDATE)


def test_config_changes_apply_at_the_next_plan(scene):
    planner = RiskAwarePlanner()
    planner.config = dataclasses.replace(planner.config, risk_measure="mean")
    assert planner.plan(*scene, 0.0).risk_measure == "mean"
    planner.update_config(PlannerConfig(risk_measure="worst"))
    assert planner.plan(*scene, 0.0).risk_measure == "worst"
    with pytest.raises(ValueError, match="risk_level"):
        planner.update_config(risk_level=1.0)
    assert planner.config.risk_measure == "worst"  # a rejected change leaves the config as it was


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"risk_level": 1.0}, "risk_level"),
        ({"risk_measure": "median"}, "risk_measure"),
        ({"dt_s": 0.3}, "whole multiple"),
        ({"num_scenarios": 0}, "num_scenarios"),
        ({"prediction_timeout_s": -1.0}, "prediction_timeout_s"),
        ({"accel_levels_mps2": ()}, "accel_levels_mps2"),
        ({"target_speed_mps": float("inf")}, "target_speed_mps"),
        ({"refine_solver": "ECOS"}, "refine_solver"),
    ],
)
def test_invalid_configs_say_why(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(PlannerConfig(), **change).validate()


def test_ego_far_beside_the_reference_gets_the_braking_fallback(scene):
    ego, forecasts, reference = scene
    planner = RiskAwarePlanner(PlannerConfig())
    beside = dataclasses.replace(ego, y_m=ego.y_m + reference.road_left_m + 30.0)
    plan = planner.plan(beside, forecasts, reference, 0.0)
    assert not plan.ok and plan.fallback is FallbackReason.OFF_ROAD
    assert plan.states[-1, 3] < beside.v_mps  # braking
    assert planner.plan(ego, forecasts, reference, 0.0).ok


def test_a_spent_cycle_budget_skips_the_refinement(scene):
    ego, forecasts, reference = scene
    rushed = RiskAwarePlanner(PlannerConfig(cycle_budget_s=1e-6)).plan(ego, forecasts, reference, 0.0)
    relaxed = RiskAwarePlanner(PlannerConfig()).plan(ego, forecasts, reference, 0.0)
    assert rushed.ok and rushed.note is PlanNote.REFINEMENT_SKIPPED_BUDGET and rushed.reason
    assert relaxed.ok and relaxed.note is not PlanNote.REFINEMENT_SKIPPED_BUDGET
    with pytest.raises(ValueError, match="cycle_budget_s must be positive"):
        PlannerConfig(cycle_budget_s=0.0).validate()


def _slow_car_ahead(reference: ReferencePath, now_s: float) -> ForecastSet:
    """One car at 5 m/s in lane 0, 140 m along the road at t = 0 (the ego is at 100 m)."""
    dt, steps = 0.2, 25
    s = 140.0 + 5.0 * (now_s + dt * np.arange(1, steps + 1))
    x, y, _ = reference.to_cartesian(s, np.zeros_like(s))
    cov = np.zeros((1, steps, 2, 2))
    cov[..., 0, 0] = cov[..., 1, 1] = 0.1
    return ForecastSet(now_s, dt, steps, [AgentForecast(1, np.array([1.0]), np.stack([x, y], axis=1)[None], cov)])


def test_a_lane_change_is_finished_smoothly_across_replanning():
    """Re-planning every 0.2 s from where the last plan put the car: the change goes one way, ends on the
    new lane centre within a few seconds and does not overshoot it (no restart, no flip at the midpoint)."""
    reference = ReferencePath.straight(400.0, lanes=2, lane_width_m=3.5, speed_limit_mps=25.0,
                                       origin_xy_m=(-100.0, 0.0))
    planner = RiskAwarePlanner(PlannerConfig())
    ego = EgoState(0.0, 0.0, 0.0, 0.0, 20.0, a_mps2=0.0)
    offsets_m = []
    for k in range(25):
        now_s = 0.2 * k
        plan = planner.plan(ego, _slow_car_ahead(reference, now_s), reference, now_s)
        assert plan.ok, plan.reason
        x, y, yaw, v, a = plan.states[1]
        ego = EgoState(now_s + 0.2, x, y, yaw, v, a_mps2=a)
        offsets_m.append(y)
    offsets = np.asarray(offsets_m)
    arrived = int(np.argmax(offsets > 3.5 - 0.1))
    assert 0 < arrived * 0.2 <= 3.6  # done within 3.6 s
    assert np.all(np.diff(offsets[: arrived + 1]) > 0.0)  # one way
    assert np.abs(offsets[arrived:] - 3.5).max() < 0.3  # and it stays there: no overshoot, no drift back
