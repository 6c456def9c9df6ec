"""Encoder features and the risk problems' planner costs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from biased_helpers import didactic_problem, mixed_modes_forecasts, small_highway_problem, straight_plan

from rap_planner.core.biased.features import NUM_FEATURES, mixtures, mode_features
from rap_planner.core.scenarios import sample_scenarios
from rap_planner.core.types import AgentForecast, ForecastSet


def rotated(forecasts: ForecastSet, angle_rad: float, offset_m: np.ndarray) -> ForecastSet:
    rot = np.array([[math.cos(angle_rad), -math.sin(angle_rad)], [math.sin(angle_rad), math.cos(angle_rad)]])
    agents = [AgentForecast(a.agent_id, a.weights, a.means_m @ rot.T + offset_m, rot @ a.covariances_m2 @ rot.T,
                            a.length_m, a.width_m) for a in forecasts.agents]
    return ForecastSet(forecasts.stamp_s, forecasts.dt_s, forecasts.num_steps, agents)


def test_shapes_padding_and_orthonormal_frames():
    forecasts = mixed_modes_forecasts()
    features, frames = mode_features(mixtures(forecasts), straight_plan(forecasts), forecasts.dt_s)
    assert features.shape == (2, 3, NUM_FEATURES) and np.all(np.isfinite(features))
    np.testing.assert_array_equal(features[0, 1:], 0.0)  # agent 7 has one mode: the rest is padding
    np.testing.assert_allclose(np.einsum("nkji,nkjl->nkil", frames, frames), np.broadcast_to(np.eye(2), frames.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(frames), 1.0)  # rotations: the density ratio needs no Jacobian


def test_features_do_not_depend_on_the_world_frame():
    forecasts = mixed_modes_forecasts()
    plan = straight_plan(forecasts)
    angle, offset = 1.1, np.array([300.0, -40.0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    a, frames_a = mode_features(mixtures(forecasts), plan, forecasts.dt_s)
    turned = rotated(forecasts, angle, offset)
    b, frames_b = mode_features(mixtures(turned), plan @ rot.T + offset, forecasts.dt_s)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # A frame shift moves the agent, at the step the frame is built at (the Mahalanobis-closest one), by the
    # rotated displacement. (At other steps the per-step Cholesky factors of the scenario sampler are not
    # rotation-equivariant when the covariance changes shape, so neither are its samples.)
    mix_a, mix_b = mixtures(forecasts), mixtures(turned)
    shift = np.array([0.7, -1.3])
    for k in range(3):
        step = int(round(a[1, k, 5] * forecasts.num_steps)) - 1
        move_a = mix_a.chol_m[1, k, step] @ frames_a[1, k] @ shift
        move_b = mix_b.chol_m[1, k, step] @ frames_b[1, k] @ shift
        np.testing.assert_allclose(rot @ move_a, move_b, atol=1e-6)


def test_frame_points_the_first_axis_along_the_relative_motion():
    problem = didactic_problem()
    mix = mixtures(problem.forecasts)
    features, frames = mode_features(mix, problem.plan_xy(problem.keep_speed_candidate()), problem.forecasts.dt_s)
    # The ego drives along +x past a crosser moving along +y: relative motion is mostly along x, so e1's
    # world image (L e1) is mostly along x.
    image = mix.chol_m[0, 1, 12] @ frames[0, 1, :, 0]
    assert abs(image[0]) > 0.9 * np.linalg.norm(image)


def test_plan_shape_is_checked():
    forecasts = mixed_modes_forecasts()
    with pytest.raises(ValueError, match="ego_plan_xy_m"):
        mode_features(mixtures(forecasts), np.zeros((3, 2)), forecasts.dt_s)


def test_latent_positions_match_the_scenario_sampler():
    forecasts = mixed_modes_forecasts()
    mix = mixtures(forecasts)
    rng = np.random.default_rng(4)
    from rap_planner.core.biased.sampler import base_latents

    modes, z = base_latents(mix.weights, 50, rng)
    np.testing.assert_allclose(mix.positions(modes, z), sample_scenarios(forecasts, 50, 4).positions_m, atol=1e-9)


def test_selected_candidate_costs_equal_the_full_evaluation():
    problem = small_highway_problem()
    positions = sample_scenarios(problem.forecasts, 32, 0).positions_m
    full = problem.costs(positions)
    pick = np.array([problem.keep_speed_candidate(), 5, problem.candidates.num - 1])
    np.testing.assert_allclose(problem.costs(positions, pick), full[pick], rtol=1e-5, atol=1e-4)
    det = problem.deterministic_cost(int(pick[0]))
    assert np.all(full[pick[0]] >= det - 1e-9)


def test_keep_speed_candidate_holds_lane_and_speed():
    problem = didactic_problem()
    c = problem.keep_speed_candidate()
    np.testing.assert_allclose(problem.candidates.d_m[c], problem.candidates.d_m[c, 0], atol=1e-6)
    np.testing.assert_allclose(problem.candidates.v_mps[c], problem.ego.v_mps, atol=1e-6)
    plan = problem.plan_xy(c)
    assert plan.shape == (problem.forecasts.num_steps, 2)
    np.testing.assert_allclose(plan[:, 0], problem.ego.v_mps * problem.times_s, atol=1e-6)
