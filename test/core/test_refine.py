import dataclasses

import cvxpy as cp
import numpy as np
import pytest

from rap_planner.core.candidates import VehicleLimits
from rap_planner.core.costs import CostModel, CostWeights
from rap_planner.core.planner import PlannerConfig, RiskAwarePlanner
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.refine import CvarRefiner, QuadraticWeights, RefineInputs, position_jacobian, speed_jacobian
from rap_planner.core.scenes import didactic_scene, highway_scene

STEPS, SCENARIOS, DT = 25, 16, 0.2
LIMITS = VehicleLimits()
WEIGHTS = QuadraticWeights(progress=1.0, comfort=0.1, jerk_ratio=0.1)


def inputs(seed: int, alpha: float = 0.9) -> RefineInputs:
    rng = np.random.default_rng(seed)
    return RefineInputs(
        accel_mps2=np.zeros(STEPS), speed_mps=np.full(STEPS, 10.0), prev_accel_mps2=0.0,
        loss=rng.uniform(0.0, 50.0, SCENARIOS), grad=rng.normal(0.0, 5.0, (SCENARIOS, STEPS)),
        weights=np.full(SCENARIOS, 1.0 / SCENARIOS), tail_scale=1.0 / (1.0 - alpha), target_speed_mps=10.0,
    )


def linear_model_risk(data: RefineInputs, accel: np.ndarray, alpha: float) -> float:
    """CVaR of the linearised losses plus the exact longitudinal cost, evaluated directly."""
    from rap_planner.core.risk import CVaR

    delta = accel - data.accel_mps2
    losses = data.loss + data.grad @ delta
    v = np.concatenate([[10.0], data.speed_mps + speed_jacobian(STEPS, DT) @ delta])
    a = np.append(accel, accel[-1])
    model = CostModel(ReferencePath.straight(), CostWeights(), data.target_speed_mps, 0.0, 4.5, 1.8)
    return float(CVaR().risk(losses, data.weights, alpha)) + float(model.longitudinal_cost(v, a, 0.0, DT))


def test_problem_is_dpp_and_built_once():
    refiner = CvarRefiner(STEPS, SCENARIOS, DT, WEIGHTS)
    assert refiner.is_dpp()
    problem = refiner.problem
    for seed in range(3):  # re-solving only refills parameters
        assert refiner.refine(inputs(seed), LIMITS) is not None
        assert refiner.problem is problem


@pytest.mark.parametrize("solver", ["CLARABEL", "OSQP"])
def test_resolve_lowers_the_modelled_risk_and_respects_the_limits(solver):
    refiner = CvarRefiner(STEPS, SCENARIOS, DT, WEIGHTS, solver=solver)
    for seed in range(3):
        data = inputs(seed)
        result = refiner.refine(data, LIMITS, trust_region_mps2=1.0, time_limit_s=1.0)
        assert result is not None and result.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
        before = linear_model_risk(data, data.accel_mps2, 0.9)
        after = linear_model_risk(data, result.accel_mps2, 0.9)
        assert after <= before + 1e-6
        assert result.objective == pytest.approx(after, rel=1e-3, abs=1e-2)
        accel, tol = result.accel_mps2, (1e-5 if solver == "CLARABEL" else 5e-3)  # OSQP runs at 1e-3 accuracy
        assert np.all(np.abs(accel - data.accel_mps2) <= 1.0 + tol)
        assert np.all(accel <= LIMITS.max_accel_mps2) and np.all(accel >= -LIMITS.max_decel_mps2)
        assert np.all(np.abs(np.diff(accel, prepend=0.0)) <= LIMITS.max_jerk_mps3 * DT + tol)
        assert np.all(10.0 + speed_jacobian(STEPS, DT) @ accel >= -tol)


def test_solver_failure_returns_none(monkeypatch):
    refiner = CvarRefiner(STEPS, SCENARIOS, DT, WEIGHTS)

    def fail(**_):
        raise cp.error.SolverError("boom")

    monkeypatch.setattr(refiner.problem, "solve", fail)
    assert refiner.refine(inputs(0), LIMITS) is None
    with pytest.raises(ValueError, match="grad"):
        refiner.refine(dataclasses.replace(inputs(0), grad=np.zeros((3, 3))), LIMITS)


def test_jacobians_match_integration():
    accel = np.random.default_rng(1).normal(size=STEPS)
    v = 5.0 + DT * np.cumsum(accel)
    s = np.cumsum(np.concatenate([[5.0], v[:-1]]) * DT + 0.5 * accel * DT**2)
    np.testing.assert_allclose(speed_jacobian(STEPS, DT) @ accel, v - 5.0, atol=1e-12)
    np.testing.assert_allclose(position_jacobian(STEPS, DT) @ accel, s - 5.0 * DT * np.arange(1, STEPS + 1), atol=1e-12)


@pytest.mark.parametrize("scene", ["didactic", "highway"])
@pytest.mark.parametrize("level", [0.0, 0.9])
def test_refinement_never_increases_the_plan_risk(scene, level):
    ego, forecasts, reference = didactic_scene() if scene == "didactic" else highway_scene(num_agents=12)
    config = PlannerConfig(risk_level=level, num_scenarios=32)
    refined = RiskAwarePlanner(config).plan(ego, forecasts, reference, 0.0)
    sampled = RiskAwarePlanner(dataclasses.replace(config, refine=False)).plan(ego, forecasts, reference, 0.0)
    assert refined.ok and sampled.ok
    assert refined.risk <= sampled.risk + 1e-6
