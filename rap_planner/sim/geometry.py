"""Frame conversions between SUMO and our conventions, footprints, and road geometry from the nets.

SUMO reports a vehicle's FRONT-bumper centre and a compass angle (degrees clockwise from north).
We use the footprint CENTRE and REP 103 yaw (radians counter-clockwise from +x). The nets keep the
designed coordinates, so SUMO's x, y is our world frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import sumolib
from shapely import affinity
from shapely.geometry import LineString, Polygon, box
from shapely.ops import unary_union


def sumo_angle_to_yaw(angle_deg: float) -> float:
    """Compass degrees (clockwise from north) to yaw radians in (-pi, pi]."""
    return wrap_angle(math.radians(90.0 - angle_deg))


def yaw_to_sumo_angle(yaw_rad: float) -> float:
    """Yaw radians to compass degrees in [0, 360)."""
    return (90.0 - math.degrees(yaw_rad)) % 360.0


def wrap_angle(angle_rad: float) -> float:
    """Wraps to (-pi, pi]."""
    wrapped = math.remainder(angle_rad, 2.0 * math.pi)
    return math.pi if wrapped == -math.pi else wrapped


def front_to_centre(x_m: float, y_m: float, yaw_rad: float, length_m: float) -> tuple[float, float]:
    """SUMO front-bumper point to the footprint centre."""
    half = 0.5 * length_m
    return x_m - half * math.cos(yaw_rad), y_m - half * math.sin(yaw_rad)


def centre_to_front(x_m: float, y_m: float, yaw_rad: float, length_m: float) -> tuple[float, float]:
    """Footprint centre to SUMO's front-bumper point (what ``moveToXY`` expects)."""
    half = 0.5 * length_m
    return x_m + half * math.cos(yaw_rad), y_m + half * math.sin(yaw_rad)


def footprint(x_m: float, y_m: float, yaw_rad: float, length_m: float, width_m: float) -> Polygon:
    """Rotated rectangle around the footprint centre."""
    rect = box(-0.5 * length_m, -0.5 * width_m, 0.5 * length_m, 0.5 * width_m)
    return affinity.translate(affinity.rotate(rect, yaw_rad, origin=(0.0, 0.0), use_radians=True), x_m, y_m)


@dataclass(frozen=True)
class ReferencePath:
    """The ego's reference: lane centreline along its route plus what the planner may use beside it.

    ``lane_offsets_m`` are lateral offsets (left positive) of the usable lanes' centres from the
    centreline, 0 being the ego's own lane. ``s_m`` is the arc length of each centreline point.
    """

    centerline_m: np.ndarray  # (N, 2) world x, y
    s_m: np.ndarray  # (N,)
    lane_width_m: float
    lane_offsets_m: tuple[float, ...]
    speed_limit_mps: float
    goal_s_m: float

    @property
    def length_m(self) -> float:
        return float(self.s_m[-1])

    def project(self, x_m: float, y_m: float) -> tuple[float, float]:
        """Arc length and signed lateral offset (left positive) of the closest centreline point."""
        start = self.centerline_m[:-1]
        seg = np.diff(self.centerline_m, axis=0)
        seg_len2 = np.maximum(np.einsum("ij,ij->i", seg, seg), 1e-12)
        rel = np.array([x_m, y_m]) - start
        t = np.clip(np.einsum("ij,ij->i", rel, seg) / seg_len2, 0.0, 1.0)
        closest = start + t[:, None] * seg
        dist2 = np.einsum("ij,ij->i", closest - [x_m, y_m], closest - [x_m, y_m])
        i = int(np.argmin(dist2))
        s = self.s_m[i] + t[i] * math.sqrt(seg_len2[i])
        cross = seg[i, 0] * rel[i, 1] - seg[i, 1] * rel[i, 0]
        return float(s), float(math.copysign(math.sqrt(dist2[i]), cross))

    def point_at(self, s_m: float) -> tuple[float, float, float]:
        """World x, y and heading of the centreline at arc length ``s_m`` (clamped to the path)."""
        s = float(np.clip(s_m, 0.0, self.s_m[-1]))
        i = int(np.clip(np.searchsorted(self.s_m, s, side="right") - 1, 0, len(self.s_m) - 2))
        p0, p1 = self.centerline_m[i], self.centerline_m[i + 1]
        t = (s - self.s_m[i]) / max(self.s_m[i + 1] - self.s_m[i], 1e-12)
        x, y = p0 + t * (p1 - p0)
        return float(x), float(y), math.atan2(p1[1] - p0[1], p1[0] - p0[0])


@lru_cache(maxsize=8)
def load_net(net_path: Path) -> sumolib.net.Net:
    """Parses a net once per process (internal junction lanes included)."""
    return sumolib.net.readNet(str(net_path), withInternal=True)


def route_lane_ids(net: sumolib.net.Net, edges: list[str], lanes: tuple[int, ...]) -> list[str]:
    """Lane ids along a route, the internal junction lanes between them included."""
    if len(edges) != len(lanes):
        raise ValueError(f"route has {len(edges)} edges but {len(lanes)} lane indices were given")
    ids = [f"{edges[0]}_{lanes[0]}"]
    for i in range(1, len(edges)):
        from_lane = net.getLane(ids[-1])
        via = [c.getViaLaneID() for c in from_lane.getOutgoing() if c.getToLane().getID() == f"{edges[i]}_{lanes[i]}"]
        if not via:
            raise ValueError(f"no connection from {ids[-1]} to {edges[i]}_{lanes[i]}")
        lane_id = via[0]
        while lane_id:
            ids.append(lane_id)
            lane_id = _next_internal(net, lane_id, f"{edges[i]}_{lanes[i]}")
        ids.append(f"{edges[i]}_{lanes[i]}")
    return ids


def _next_internal(net: sumolib.net.Net, internal_id: str, target_id: str) -> str:
    """Follows a chain of internal lanes (junctions split some turns in two)."""
    for conn in net.getLane(internal_id).getOutgoing():
        if conn.getToLane().getID() != target_id and conn.getToLane().getEdge().getFunction() == "internal":
            return conn.getToLane().getID()
    return ""


def lane_polyline(net: sumolib.net.Net, lane_ids: list[str], spacing_m: float = 1.0) -> np.ndarray:
    """Concatenated lane shapes, duplicates removed, resampled to about ``spacing_m``."""
    points = np.concatenate([np.asarray(net.getLane(i).getShape(), dtype=float)[:, :2] for i in lane_ids])
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-3
    points = points[keep]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    s_new = np.linspace(0.0, s[-1], max(2, int(math.ceil(s[-1] / spacing_m)) + 1))
    return np.column_stack([np.interp(s_new, s, points[:, 0]), np.interp(s_new, s, points[:, 1])])


def build_reference_path(net_path: Path, edges: list[str], lanes: tuple[int, ...], lane_offsets_m: tuple[float, ...],
                         speed_limit_mps: float, goal_s_m: float) -> ReferencePath:
    """The ego's reference path through the lanes it is meant to keep."""
    net = load_net(net_path)
    lane_ids = route_lane_ids(net, edges, lanes)
    centerline = lane_polyline(net, lane_ids)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centerline, axis=0), axis=1))])
    width = float(net.getLane(lane_ids[0]).getWidth())
    return ReferencePath(centerline, s, width, tuple(lane_offsets_m), speed_limit_mps, goal_s_m)


def lane_polygons(net_path: Path) -> list[np.ndarray]:
    """Outline (M, 2) of every lane, internal lanes included, for drawing and the drivable area."""
    polygons = []
    for polygon in _lane_shapes(net_path):
        polygons.append(np.asarray(polygon.exterior.coords))
    return polygons


@lru_cache(maxsize=8)
def _lane_shapes(net_path: Path) -> tuple[Polygon, ...]:
    net = load_net(net_path)
    shapes = []
    for edge in net.getEdges(withInternal=True):
        for lane in edge.getLanes():
            line = LineString([p[:2] for p in lane.getShape()])
            if line.length > 1e-3:
                shapes.append(line.buffer(0.5 * lane.getWidth(), cap_style="flat", join_style="round"))
    return tuple(shapes)


@lru_cache(maxsize=8)
def drivable_area(net_path: Path) -> Polygon:
    """Union of all lanes and junction areas of a net."""
    net = load_net(net_path)
    junctions = [Polygon([p[:2] for p in node.getShape()]) for node in net.getNodes() if len(node.getShape()) >= 3]
    return unary_union([*_lane_shapes(net_path), *[j.buffer(0) for j in junctions]])


def lane_markings(net_path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Border polylines of the normal lanes, split into (road edges: solid, between lanes: dashed)."""
    net = load_net(net_path)
    solid, dashed = [], []
    for edge in net.getEdges(withInternal=False):
        lanes = edge.getLanes()
        for index, lane in enumerate(lanes):
            shape = LineString([p[:2] for p in lane.getShape()])
            for side, outer in ((0.5, index == len(lanes) - 1), (-0.5, index == 0)):
                if side < 0 or outer:
                    border = shape.offset_curve(side * lane.getWidth())
                    (solid if outer else dashed).append(np.asarray(border.coords))
    return solid, dashed
