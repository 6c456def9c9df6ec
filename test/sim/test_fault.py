"""Fault attribution on hand-built collisions (no SUMO): every rule of rap_planner.sim.fault."""

from __future__ import annotations

import math

import pytest

from rap_planner.sim.fault import (
    Body,
    CutIn,
    ImpactContext,
    ImpactSide,
    attribute,
    impact_side,
    physical_stopping_distance_m,
    unavoidable_cutin,
)

EGO = Body(0.0, 0.0, 0.0, 20.0, 4.5, 1.8)


def car(x_m: float, y_m: float, yaw_rad: float = 0.0, v_mps: float = 15.0) -> Body:
    return Body(x_m, y_m, yaw_rad, v_mps, 4.5, 1.8)


def context(other: Body, ego: Body = EGO, **kwargs: object) -> ImpactContext:
    values: dict = {"ego_max_decel_mps2": 0.0, "ego_lateral_speed_mps": 0.0, "ego_offset_toward_m": 0.0} | kwargs
    return ImpactContext(ego, other, **values)


def test_ego_running_into_the_car_ahead_is_a_front_collision_at_fault():
    verdict = attribute(context(car(4.4, 0.0)))
    assert verdict.side is ImpactSide.FRONT
    assert verdict.at_fault


def test_sides_follow_the_ego_heading_not_the_world_axes():
    ego_north = Body(10.0, 10.0, math.pi / 2, 20.0, 4.5, 1.8)
    assert impact_side(ego_north, car(10.0, 14.4, math.pi / 2)) is ImpactSide.FRONT
    assert impact_side(ego_north, car(10.0, 5.6, math.pi / 2)) is ImpactSide.REAR
    assert impact_side(ego_north, car(8.3, 10.0, math.pi / 2)) is ImpactSide.SIDE


def test_hit_from_behind_while_braking_comfortably_is_not_at_fault():
    verdict = attribute(context(car(-4.4, 0.0, v_mps=25.0), ego_max_decel_mps2=3.0))
    assert verdict.side is ImpactSide.REAR
    assert not verdict.at_fault


def test_hit_from_behind_after_a_brake_check_is_at_fault():
    assert attribute(context(car(-4.4, 0.0, v_mps=25.0), ego_max_decel_mps2=7.0)).at_fault


def test_hit_from_behind_right_after_the_ego_changed_into_that_lane_is_at_fault():
    verdict = attribute(context(car(-4.4, 0.0, v_mps=25.0), ego_max_decel_mps2=1.0, ego_lane_change_age_s=1.5))
    assert verdict.at_fault
    assert not attribute(context(car(-4.4, 0.0, v_mps=25.0), ego_lane_change_age_s=10.0)).at_fault


def test_side_swipe_is_the_fault_of_whoever_moved_sideways():
    beside = car(0.0, 1.7)
    assert attribute(context(beside)).side is ImpactSide.SIDE
    assert not attribute(context(beside)).at_fault
    assert attribute(context(beside, ego_lateral_speed_mps=0.8)).at_fault  # ego changing lanes into it
    assert attribute(context(beside, ego_offset_toward_m=1.2)).at_fault  # ego straddling its lane
    assert not attribute(context(beside, ego_lateral_speed_mps=-0.8)).at_fault  # ego moving away


def test_cut_in_below_any_stopping_distance_excuses_a_front_collision():
    ahead = car(4.4, 0.0)
    close = CutIn(age_s=0.8, gap_m=2.0, closing_mps=8.0)  # 8 m/s closing needs 6 m at least
    assert not attribute(context(ahead, cutin=close)).at_fault
    assert attribute(context(ahead, cutin=CutIn(0.8, 20.0, 8.0))).at_fault  # room to brake
    assert attribute(context(ahead, cutin=CutIn(6.0, 2.0, 8.0))).at_fault  # long ago: should have made room
    assert attribute(context(ahead, cutin=close, ego_lateral_speed_mps=1.0)).at_fault  # ego moved into it


def test_standing_ego_hit_on_its_front_is_not_at_fault():
    standing = Body(0.0, 0.0, 0.0, 0.0, 4.5, 1.8)
    assert not attribute(context(car(4.4, 0.0, math.pi, 3.0), ego=standing)).at_fault


def test_physical_stopping_distance_grows_with_closing_speed_and_is_zero_when_opening():
    assert physical_stopping_distance_m(-5.0) == 0.0
    assert physical_stopping_distance_m(9.0) == pytest.approx(9.0 * 0.3 + 81.0 / 18.0)
    assert physical_stopping_distance_m(20.0) > physical_stopping_distance_m(10.0)
    assert not unavoidable_cutin(None)
    assert not unavoidable_cutin(CutIn(0.5, 1.0, -2.0))  # the cutter pulls away: there was time
    assert unavoidable_cutin(CutIn(0.5, -1.0, 0.0))  # it entered alongside


def test_deep_fast_rear_end_and_a_touch_without_overlap_are_still_front_collisions():
    assert impact_side(EGO, car(2.4, 0.0)) is ImpactSide.FRONT  # 2.1 m deep: 21 m/s closing in one 0.1 s step
    assert impact_side(EGO, car(4.6, 0.3)) is ImpactSide.FRONT  # 0.1 m apart: only SUMO saw the contact
    assert impact_side(EGO, car(0.5, -1.75)) is ImpactSide.SIDE  # long shallow overlap along the right side
