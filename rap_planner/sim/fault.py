"""Who caused a collision: the ego (at fault) or the other road user, judged like nuPlan/NAVSIM.

A collision is classified by where it touches the ego (front bumper, rear bumper, side) and then
judged with what the ego was doing just before:
- front: at fault, unless the other had just cut into the ego's lane with a gap below any
  physical stopping distance (no planner could have avoided it) or the ego stood still;
- rear: not at fault, unless the ego braked harder than a comfortable bound (brake check) or had
  just changed into the follower's lane (it cut in);
- side: at fault when the ego moved or was displaced sideways toward the other (a lane change or
  straddling lanes into occupied space), else the other side-swiped it.
Pure geometry and numbers: no SUMO here, so each rule is tested on hand-built collisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import shapely
from shapely.geometry import Polygon

from rap_planner.sim.geometry import footprint

COMFORT_DECEL_MPS2 = 4.0  # braking up to this is normal driving: a follower must cope with it
PHYSICAL_DECEL_MPS2 = 9.0  # the hardest braking a car achieves (SUMO's emergencyDecel)
REACTION_S = 0.3  # the shortest physical reaction before braking starts
CUTIN_WINDOW_S = 3.0  # a cut-in excuses a front collision this long after the cutter entered
LANE_CHANGE_WINDOW_S = 3.0  # the ego "cut in" when it changed lane this long before a rear hit
LATERAL_SPEED_MPS = 0.3  # moving sideways toward the other faster than this is a lateral manoeuvre
OFF_CENTRE_M = 0.8  # farther than this from every lane centre the ego straddles lanes
CONTACT_TOLERANCE_M = 0.3  # SUMO may report a touch our footprints miss by a few centimetres
STOPPED_MPS = 0.1


class ImpactSide(Enum):
    FRONT = "front"
    REAR = "rear"
    SIDE = "side"


@dataclass(frozen=True)
class Body:
    """A vehicle's footprint and speed at the collision (footprint centre, world frame)."""

    x_m: float
    y_m: float
    yaw_rad: float
    v_mps: float
    length_m: float
    width_m: float

    def polygon(self) -> Polygon:
        return footprint(self.x_m, self.y_m, self.yaw_rad, self.length_m, self.width_m)


@dataclass(frozen=True)
class CutIn:
    """The other's entry into the ego's lane: how long before the collision, the bumper gap then
    (negative: alongside) and the speed the ego was closing in on it at (negative: opening)."""

    age_s: float
    gap_m: float
    closing_mps: float


@dataclass(frozen=True)
class ImpactContext:
    """Everything the judgement needs about one collision."""

    ego: Body
    other: Body
    ego_max_decel_mps2: float  # hardest ego braking over the last seconds (positive: braking)
    ego_lateral_speed_mps: float  # ego's sideways speed toward the other (positive: toward it)
    ego_offset_toward_m: float  # ego centre's offset from its nearest lane centre toward the other
    ego_lane_change_age_s: float = math.inf  # time since the ego's lane last changed
    cutin: CutIn | None = None  # the other's latest entry into the ego's lane, if any


@dataclass(frozen=True)
class Attribution:
    at_fault: bool
    side: ImpactSide
    reason: str


def impact_side(ego: Body, other: Body) -> ImpactSide:
    """Which face of the ego the other came through: the overlap is thin across that face.

    Overlap depths are compared relative to the ego's length and width, so a fast rear-end (deep
    along the length) stays a front collision and a long, shallow side swipe stays a side one.
    """
    ego_box, other_box = ego.polygon(), other.polygon()
    region = ego_box.intersection(other_box)
    if region.area <= 1e-9:  # touching (SUMO's report): take the contact within a small tolerance
        region = ego_box.intersection(other_box.buffer(CONTACT_TOLERANCE_M))
    c, s = math.cos(ego.yaw_rad), math.sin(ego.yaw_rad)
    if region.is_empty:
        long_m = [(other.x_m - ego.x_m) * c + (other.y_m - ego.y_m) * s]
        lat_m = [-(other.x_m - ego.x_m) * s + (other.y_m - ego.y_m) * c]
        far_long = abs(long_m[0]) / (ego.length_m + other.length_m)
        far_lat = abs(lat_m[0]) / (ego.width_m + other.width_m)
        front_or_rear = far_long >= far_lat
    else:
        points = shapely.get_coordinates(region).tolist()
        long_m = [(x - ego.x_m) * c + (y - ego.y_m) * s for x, y in points]
        lat_m = [-(x - ego.x_m) * s + (y - ego.y_m) * c for x, y in points]
        depth_long = (max(long_m) - min(long_m)) / ego.length_m
        depth_lat = (max(lat_m) - min(lat_m)) / ego.width_m
        front_or_rear = depth_long <= depth_lat
    if not front_or_rear:
        return ImpactSide.SIDE
    return ImpactSide.FRONT if sum(long_m) / len(long_m) > 0.0 else ImpactSide.REAR


def physical_stopping_distance_m(closing_mps: float) -> float:
    """The shortest distance in which the ego can shed a closing speed: a short reaction, then full braking."""
    closing = max(closing_mps, 0.0)
    return closing * REACTION_S + closing**2 / (2.0 * PHYSICAL_DECEL_MPS2)


def unavoidable_cutin(cutin: CutIn | None) -> bool:
    """A recent cut-in whose gap at entry was below any physical stopping distance."""
    return (cutin is not None and cutin.age_s <= CUTIN_WINDOW_S
            and cutin.gap_m < physical_stopping_distance_m(cutin.closing_mps))


def attribute(ctx: ImpactContext) -> Attribution:
    """Judges one collision (see the module docstring for the rules)."""
    side = impact_side(ctx.ego, ctx.other)
    lateral_move = ctx.ego_lateral_speed_mps > LATERAL_SPEED_MPS or ctx.ego_offset_toward_m > OFF_CENTRE_M
    if side is ImpactSide.FRONT:
        if unavoidable_cutin(ctx.cutin) and not lateral_move:
            return Attribution(False, side, "cut-in below stopping distance")
        if ctx.ego.v_mps < STOPPED_MPS and not lateral_move:
            return Attribution(False, side, "hit while standing still")
        return Attribution(True, side, "ego's front hit it")
    if side is ImpactSide.REAR:
        if ctx.ego_lane_change_age_s <= LANE_CHANGE_WINDOW_S or lateral_move:
            return Attribution(True, side, "ego cut in front of the follower")
        if ctx.ego_max_decel_mps2 > COMFORT_DECEL_MPS2:
            return Attribution(True, side, f"ego braked at {ctx.ego_max_decel_mps2:.1f} m/s^2")
        return Attribution(False, side, "hit from behind")
    if lateral_move:
        return Attribution(True, side, "ego moved sideways into occupied space")
    return Attribution(False, side, "side-swiped by the other")
