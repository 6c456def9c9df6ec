"""Frame conventions (SUMO compass angle / front bumper vs REP 103 yaw / footprint centre) and road geometry."""

import math

import numpy as np
import pytest

from rap_planner.sim.geometry import (
    build_reference_path,
    centre_to_front,
    drivable_area,
    footprint,
    front_to_centre,
    sumo_angle_to_yaw,
    yaw_to_sumo_angle,
)
from rap_planner.sim.scenarios import SCENARIOS, route_edges


@pytest.mark.parametrize(("angle_deg", "yaw_rad"), [(90.0, 0.0), (0.0, math.pi / 2), (180.0, -math.pi / 2),
                                                    (270.0, math.pi), (45.0, math.pi / 4)])
def test_sumo_compass_angle_maps_to_counter_clockwise_yaw(angle_deg, yaw_rad):
    assert sumo_angle_to_yaw(angle_deg) == pytest.approx(yaw_rad)
    assert yaw_to_sumo_angle(yaw_rad) == pytest.approx(angle_deg % 360.0)


def test_front_bumper_and_centre_are_half_a_length_apart_along_the_heading():
    yaw = math.radians(30.0)
    fx, fy = centre_to_front(10.0, 5.0, yaw, 4.0)
    assert (fx, fy) == pytest.approx((10.0 + 2.0 * math.cos(yaw), 5.0 + 2.0 * math.sin(yaw)))
    assert front_to_centre(fx, fy, yaw, 4.0) == pytest.approx((10.0, 5.0))


def test_footprint_is_a_rotated_rectangle_around_the_centre():
    box = footprint(1.0, 2.0, math.pi / 2, 4.0, 2.0)
    assert box.area == pytest.approx(8.0)
    min_x, min_y, max_x, max_y = box.bounds
    assert (min_x, max_x, min_y, max_y) == pytest.approx((0.0, 2.0, 0.0, 4.0))


def test_reference_paths_follow_the_ego_lane_through_junctions():
    for spec in SCENARIOS.values():
        ref = build_reference_path(spec.net_path, list(route_edges(spec.routes_path, spec.ego_route_id)),
                                   spec.ego_lanes, spec.lane_offsets_m, spec.speed_limit_mps, spec.goal_s_m)
        steps = np.linalg.norm(np.diff(ref.centerline_m, axis=0), axis=1)
        assert steps.max() < 1.01 and ref.length_m > spec.goal_s_m
        assert 0.0 in ref.lane_offsets_m and ref.lane_width_m > 3.0
        x, y, _ = ref.point_at(spec.goal_s_m)
        s, d = ref.project(x, y)
        assert s == pytest.approx(spec.goal_s_m, abs=1e-6) and abs(d) < 1e-6
        area = drivable_area(spec.net_path)
        for offset in ref.lane_offsets_m:  # every usable lane is on the road along the whole path
            shifted = ref.centerline_m[10:-10:25] + offset * _left_normals(ref.centerline_m)[10:-10:25]
            assert all(area.contains(footprint(px, py, 0.0, 0.5, 0.5)) for px, py in shifted), spec.name


def _left_normals(xy: np.ndarray) -> np.ndarray:
    tangent = np.gradient(xy, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return np.column_stack([-tangent[:, 1], tangent[:, 0]])


def test_projection_gives_signed_lateral_offset_left_positive():
    spec = SCENARIOS["highway_cutin"]
    ref = build_reference_path(spec.net_path, ["hw"], (1,), spec.lane_offsets_m, spec.speed_limit_mps, spec.goal_s_m)
    s, d = ref.project(300.0, 3.5)
    assert s == pytest.approx(300.0) and d == pytest.approx(3.5)
    assert ref.project(300.0, -3.5)[1] == pytest.approx(-3.5)
