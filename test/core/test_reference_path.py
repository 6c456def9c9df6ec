import numpy as np
import pytest

from rap_planner.core.reference_path import ReferencePath


def arc_path(radius_m: float = 100.0, points: int = 20) -> ReferencePath:
    angle = np.linspace(0.0, np.pi / 2, points)
    return ReferencePath(np.stack([radius_m * np.sin(angle), radius_m * (1 - np.cos(angle))], axis=1),
                         lane_offsets_m=(0.0, 3.5))


def test_straight_road_frenet_is_exact():
    road = ReferencePath.straight(length_m=100.0, lanes=2, origin_xy_m=(10.0, 5.0), yaw_rad=np.pi / 2)
    s, d = np.array([0.0, 30.0, 120.0, -5.0]), np.array([0.0, 1.0, -1.0, 3.5])
    x, y, yaw = road.to_cartesian(s, d)
    np.testing.assert_allclose(x, 10.0 - d, atol=1e-9)
    np.testing.assert_allclose(y, 5.0 + s, atol=1e-9)
    np.testing.assert_allclose(yaw, np.pi / 2)
    s2, d2 = road.to_frenet(x, y)
    np.testing.assert_allclose(s2, s, atol=1e-9)
    np.testing.assert_allclose(d2, d, atol=1e-9)


def test_curved_road_round_trip_and_curvature():
    road = arc_path()
    s = np.linspace(5.0, 150.0, 40)
    d = np.linspace(-1.5, 5.0, 40)
    x, y, _ = road.to_cartesian(s, d)
    for guess in (None, s + 6.0):
        s2, d2 = road.to_frenet(x, y, s_guess_m=guess)
        np.testing.assert_allclose(s2, s, atol=0.02)
        np.testing.assert_allclose(d2, d, atol=0.02)
    np.testing.assert_allclose(road.curvature_at(np.linspace(20.0, 130.0, 10)), 0.01, atol=0.0015)


def test_drivable_area_and_lanes():
    road = ReferencePath.straight(length_m=100.0, lanes=3, lane_width_m=3.0)
    assert road.road_left_m == pytest.approx(7.5) and road.road_right_m == pytest.approx(1.5)
    inside = road.contains_xy(np.array([50.0, 50.0, 50.0]), np.array([0.0, 7.0, -2.0]))
    assert inside.tolist() == [True, True, False]
    assert road.nearest_lane_offset(4.1) == 3.0 and road.lane_index(7.9) == 2
    assert road.drivable_area.is_valid


def test_from_polyline_drops_repeated_points_and_rejects_bad_input():
    road = ReferencePath.from_polyline(np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]]), speed_limit_mps=10.0)
    assert road.length_m == pytest.approx(10.0) and road.speed_limit_mps == 10.0
    with pytest.raises(ValueError, match="two distinct points"):
        ReferencePath.from_polyline(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="finite"):
        ReferencePath.from_polyline(np.array([[0.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="lane_width_m"):
        ReferencePath.from_polyline(np.array([[0.0, 0.0], [1.0, 0.0]]), lane_width_m=0.0)
    with pytest.raises(ValueError, match="speed_limit_mps"):
        ReferencePath.from_polyline(np.array([[0.0, 0.0], [1.0, 0.0]]), speed_limit_mps=-1.0)


def test_trajectories_project_like_single_points_on_a_curve():
    road = arc_path()
    rng = np.random.default_rng(0)
    s = np.clip(20.0 + rng.uniform(0.0, 40.0, (30, 1)) + np.arange(25)[None] * rng.uniform(0.5, 4.0, (30, 1)),
                0.0, 140.0)
    d = rng.uniform(-5.0, 5.0, (30, 1)) + np.linspace(0.0, 1.0, 25)[None]
    x, y, _ = road.to_cartesian(s, d)
    s_fast, d_fast = road.trajectories_to_frenet(x, y)
    np.testing.assert_allclose(s_fast, s, atol=0.05)  # as close as the k-d tree projection of every point
    np.testing.assert_allclose(d_fast, d, atol=0.05)
