"""Agent relevance: far agents leave the plan, and leaving them out changes no cost that matters."""

import numpy as np

from rap_planner.core.candidates import CandidateConfig, ego_frenet, plan_candidates
from rap_planner.core.costs import CostModel, CostWeights, agent_tracks
from rap_planner.core.planner import PlannerConfig, RiskAwarePlanner
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.relevance import relevant_agents
from rap_planner.core.scenarios import sample_scenarios
from rap_planner.core.types import AgentForecast, EgoState, ForecastSet

DT = 0.2
STEPS = 25
TIMES = DT * np.arange(1, STEPS + 1)
ROAD = ReferencePath.straight(length_m=2000.0, lanes=3, speed_limit_mps=30.0, origin_xy_m=(-500.0, -3.5))
EGO = EgoState(stamp_s=0.0, x_m=0.0, y_m=0.0, yaw_rad=0.0, v_mps=25.0)
SMALL = CandidateConfig(num_target_speeds=4, lane_change_durations_s=(4.0,), lateral_nudges_m=(0.0,),
                        max_target_speed_mps=30.0)


def agent(agent_id: int, x0_m: float, y_m: float, v_mps: float, sigma_m: float = 0.3) -> AgentForecast:
    """One mode at constant velocity along x, its spread growing from sigma_m / 5 to sigma_m."""
    mean = np.stack([x0_m + v_mps * TIMES, np.full(STEPS, y_m)], axis=1)[None]
    growth = np.linspace(0.2, 1.0, STEPS)[:, None, None]
    cov = (np.eye(2) * sigma_m**2) * growth**2
    return AgentForecast(agent_id, np.ones(1), mean, cov[None])


def setting():
    cands = plan_candidates(EGO, ROAD, SMALL)
    _, d0, _ = ego_frenet(EGO, ROAD)
    model = CostModel(ROAD, CostWeights(), 30.0, ROAD.nearest_lane_offset(d0), EGO.length_m, EGO.width_m)
    return cands, model


def relevant(*agents: AgentForecast) -> np.ndarray:
    cands, model = setting()
    forecasts = ForecastSet(stamp_s=0.0, dt_s=DT, num_steps=STEPS, agents=list(agents))
    return relevant_agents(forecasts, cands, model, TIMES)


def test_near_agents_stay_and_far_ones_go():
    keep = relevant(
        agent(1, 30.0, 0.0, 20.0),  # slower car ahead in the ego lane
        agent(2, -20.0, 3.5, 28.0),  # overtaking in the next lane
        agent(3, 600.0, 0.0, 25.0),  # far ahead at the ego's speed
        agent(4, -400.0, -3.5, 25.0),  # far behind
        agent(5, 50.0, 60.0, 25.0),  # on a parallel road 60 m away
    )
    np.testing.assert_array_equal(keep, [True, True, False, False, False])


def test_closing_speed_and_spread_extend_the_reach():
    fast_oncoming = agent(1, 400.0, 0.0, -40.0)  # far now, head-on at 65 m/s closing
    assert relevant(fast_oncoming).all()
    assert not relevant(agent(1, 400.0, 0.0, 25.0)).any()
    # 14 m across from the ego's lane: irrelevant when certain, relevant when it may well drift over
    assert not relevant(agent(1, 10.0, -14.0, 25.0, sigma_m=0.3)).any()
    assert relevant(agent(1, 10.0, -14.0, 25.0, sigma_m=4.0)).all()


def test_zero_weight_modes_do_not_count():
    near = agent(1, 20.0, 0.0, 25.0)
    far = agent(1, 700.0, 0.0, 25.0)
    two_modes = AgentForecast(1, np.array([0.0, 1.0]), np.concatenate([near.means_m, far.means_m]),
                              np.concatenate([near.covariances_m2, far.covariances_m2]))
    assert not relevant(two_modes).any()


def test_dropped_agents_cost_nothing_measurable():
    rng = np.random.default_rng(3)
    agents = [agent(i, float(rng.uniform(-300.0, 500.0)), float(rng.choice([-3.5, 0.0, 3.5])),
                    float(rng.uniform(15.0, 32.0)), float(rng.uniform(0.2, 2.0))) for i in range(60)]
    forecasts = ForecastSet(stamp_s=0.0, dt_s=DT, num_steps=STEPS, agents=agents)
    cands, model = setting()
    keep = relevant_agents(forecasts, cands, model, TIMES)
    assert 0 < keep.sum() < len(agents)
    far = [a for a, k in zip(agents, keep, strict=True) if not k]
    dropped = ForecastSet(stamp_s=0.0, dt_s=DT, num_steps=STEPS, agents=far)
    tracks = agent_tracks(sample_scenarios(dropped, 256, seed=1, times_s=TIMES), ROAD)
    interaction = model.interaction_grid(cands, tracks)
    assert interaction.max() < 1e-3, f"a dropped agent costs {interaction.max():.3g}"


def test_planner_prunes_without_changing_the_plan():
    agents = [agent(1, 35.0, 0.0, 18.0, 0.0), agent(2, -25.0, 3.5, 27.0, 0.0)]
    agents += [agent(10 + i, 700.0 + 30.0 * i, 3.5 * (i % 3 - 1), 25.0) for i in range(40)]
    forecasts = ForecastSet(stamp_s=0.0, dt_s=DT, num_steps=STEPS, agents=agents)
    pruned = RiskAwarePlanner(PlannerConfig()).plan(EGO, forecasts, ROAD, 0.0)
    full = RiskAwarePlanner(PlannerConfig(prune_agents=False)).plan(EGO, forecasts, ROAD, 0.0)
    assert pruned.ok and full.ok
    assert pruned.num_agents == 2 and full.num_agents == len(agents)
    np.testing.assert_allclose(pruned.states, full.states, atol=1e-6)
    np.testing.assert_allclose(pruned.risk, full.risk, rtol=1e-6)
