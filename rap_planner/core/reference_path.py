"""A lane centreline with its lanes, drivable area and vectorised Frenet conversions.

Frenet frame: s is arc length along the centreline from its first point, d the signed lateral offset
(left positive, REP 103). The polyline is resampled once onto a fine uniform grid so every
conversion is index arithmetic; headings are smoothed over ``smoothing_m`` so a coarse polyline
(e.g. a SUMO lane shape) does not produce curvature spikes at its vertices. Beyond either end the
path continues straight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from scipy.spatial import cKDTree

from rap_planner.core.array_types import BoolArray, FloatArray, IntArray

_MIN_SEGMENT_M = 1e-6
_MAX_SMOOTHING_M = 25.0  # never smooth headings over more than this, whatever the vertex spacing
_STRAIGHT_YAW_SPREAD_RAD = 1e-9  # a path whose heading varies less than this is straight
_PROJECTION_PASSES = 2  # re-anchor passes of the local projection (1 on a straight road, 2 on a curve)


def _clean_polyline(points_m: np.ndarray) -> np.ndarray:
    pts = np.asarray(points_m, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"centreline must have shape (N, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("centreline must be finite")
    if len(pts) >= 2:
        step = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        pts = pts[np.concatenate([[True], step > _MIN_SEGMENT_M])]
    if len(pts) < 2:
        raise ValueError("centreline needs at least two distinct points")
    return pts


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge padding (keeps the ends' values)."""
    if window <= 1:
        return values
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    kernel = np.full(2 * half + 1, 1.0 / (2 * half + 1))
    return np.convolve(padded, kernel, mode="valid")


class ReferencePath:
    """Centreline polyline (world frame) plus lanes, speed limit and drivable area."""

    def __init__(
        self,
        centerline_m: np.ndarray,
        lane_width_m: float = 3.5,
        lane_offsets_m: Sequence[float] | np.ndarray = (0.0,),
        speed_limit_mps: float | None = None,
        road_left_m: float | None = None,
        road_right_m: float | None = None,
        resolution_m: float = 0.5,
        smoothing_m: float = 4.0,
    ) -> None:
        """``lane_offsets_m``: lateral offsets of the usable lane centres (left positive);
        ``road_left_m`` / ``road_right_m``: distances from the centreline to the drivable area's
        left / right edge (default: the outer lanes' edges); ``speed_limit_mps`` None = no limit."""
        self.points_m = _clean_polyline(centerline_m)
        self.lane_width_m = float(lane_width_m)
        if not math.isfinite(self.lane_width_m) or self.lane_width_m <= 0.0:
            raise ValueError(f"lane_width_m must be positive, got {lane_width_m!r}")
        offsets = np.sort(np.asarray(lane_offsets_m, dtype=np.float64).reshape(-1))
        if offsets.size == 0 or not np.all(np.isfinite(offsets)):
            raise ValueError("lane_offsets_m must be a non-empty list of finite offsets")
        self.lane_offsets_m = offsets
        half_lane = 0.5 * self.lane_width_m
        self.road_left_m = float(offsets[-1] + half_lane if road_left_m is None else road_left_m)
        self.road_right_m = float(-offsets[0] + half_lane if road_right_m is None else road_right_m)
        if not (math.isfinite(self.road_left_m) and math.isfinite(self.road_right_m)):
            raise ValueError("road edges must be finite")
        if self.road_left_m + self.road_right_m <= 0.0:
            raise ValueError("the drivable area has no width (road_left_m + road_right_m <= 0)")
        if speed_limit_mps is not None and (not math.isfinite(speed_limit_mps) or speed_limit_mps <= 0.0):
            raise ValueError(f"speed_limit_mps must be positive or None, got {speed_limit_mps!r}")
        self.speed_limit_mps = math.inf if speed_limit_mps is None else float(speed_limit_mps)
        if not resolution_m > 0.0:
            raise ValueError("resolution_m must be positive")
        self._resample(resolution_m, smoothing_m)
        self._tree = cKDTree(self._xy)
        self.drivable_area = self._build_drivable_area()
        shapely.prepare(self.drivable_area)

    @classmethod
    def from_polyline(cls, points_m: np.ndarray, **kwargs: Any) -> ReferencePath:
        """Build from an (N, 2) world-frame polyline; keywords as in the constructor."""
        return cls(points_m, **kwargs)

    @classmethod
    def straight(
        cls,
        length_m: float = 300.0,
        lanes: int = 1,
        lane_width_m: float = 3.5,
        speed_limit_mps: float | None = None,
        origin_xy_m: tuple[float, float] = (0.0, 0.0),
        yaw_rad: float = 0.0,
    ) -> ReferencePath:
        """A straight road of ``lanes`` lanes; the centreline is the rightmost lane's centre."""
        if lanes < 1:
            raise ValueError("a road needs at least one lane")
        direction = np.array([math.cos(yaw_rad), math.sin(yaw_rad)])
        start = np.asarray(origin_xy_m, dtype=np.float64)
        points = np.stack([start, start + length_m * direction])
        offsets = lane_width_m * np.arange(lanes)
        return cls(points, lane_width_m=lane_width_m, lane_offsets_m=offsets, speed_limit_mps=speed_limit_mps)

    # ------------------------------------------------------------------ construction

    def _resample(self, resolution_m: float, smoothing_m: float) -> None:
        seg = np.linalg.norm(np.diff(self.points_m, axis=0), axis=1)
        vertex_s = np.concatenate([[0.0], np.cumsum(seg)])
        self.length_m = float(vertex_s[-1])
        count = max(2, int(math.ceil(self.length_m / resolution_m)) + 1)
        self._ds = self.length_m / (count - 1)
        self._s = np.linspace(0.0, self.length_m, count)
        self._xy = np.stack([np.interp(self._s, vertex_s, self.points_m[:, i]) for i in range(2)], axis=1)
        tangent = np.gradient(self._xy, axis=0)
        yaw = np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0]))
        # Averaging over at least one polyline segment turns corner steps into constant curvature.
        window_m = min(max(smoothing_m, float(seg.max())), _MAX_SMOOTHING_M)
        self._yaw = _smooth(yaw, int(round(window_m / self._ds)))
        self._kappa = np.gradient(self._yaw) / self._ds
        # x, y, cos(yaw), sin(yaw) per grid point: one gather per projection pass instead of four
        self._x, self._y = self._xy[:, 0].copy(), self._xy[:, 1].copy()
        self._frame = np.stack([self._x, self._y, np.cos(self._yaw), np.sin(self._yaw)], axis=1)
        self._straight = bool(np.ptp(self._yaw) < _STRAIGHT_YAW_SPREAD_RAD)

    def _build_drivable_area(self) -> shapely.Geometry:
        step = max(1, int(round(1.0 / self._ds)))
        index = np.unique(np.concatenate([np.arange(0, len(self._s), step), [len(self._s) - 1]]))
        normal = np.stack([-self._frame[index, 3], self._frame[index, 2]], axis=1)
        left = self._xy[index] + self.road_left_m * normal
        right = self._xy[index] - self.road_right_m * normal
        polygon = shapely.Polygon(np.concatenate([left, right[::-1]]))
        if not polygon.is_valid:
            polygon = shapely.make_valid(polygon)
        return polygon

    # ------------------------------------------------------------------ queries

    def _locate(self, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid index of the segment holding s (clamped) and the fraction along it (unclamped)."""
        pos = np.asarray(s_m, dtype=np.float64) / self._ds
        index = np.clip(np.floor(pos).astype(np.int64), 0, len(self._s) - 2)
        return index, pos - index

    def _interpolate(self, table: FloatArray, index: IntArray, frac: FloatArray) -> FloatArray:
        lower = np.take(table, index)
        return lower + frac * (np.take(table, index + 1) - lower)

    def heading_at(self, s_m: np.ndarray) -> np.ndarray:
        """Centreline heading [rad] at arc length s (unwrapped along the path)."""
        i, f = self._locate(s_m)
        return self._interpolate(self._yaw, i, np.clip(f, 0.0, 1.0))

    def curvature_at(self, s_m: np.ndarray) -> np.ndarray:
        """Centreline curvature [1/m] at arc length s (zero beyond the ends)."""
        i, f = self._locate(s_m)
        inside = (f >= 0.0) & (f <= 1.0)
        return np.where(inside, self._interpolate(self._kappa, i, np.clip(f, 0.0, 1.0)), 0.0)

    def to_cartesian(self, s_m: np.ndarray, d_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s, d) -> (x, y, yaw of the centreline at s); broadcasts like numpy."""
        s_m, d_m = np.broadcast_arrays(np.asarray(s_m, dtype=np.float64), np.asarray(d_m, dtype=np.float64))
        i, f = self._locate(s_m)
        yaw = self._interpolate(self._yaw, i, np.clip(f, 0.0, 1.0))
        x = self._interpolate(self._x, i, f)
        y = self._interpolate(self._y, i, f)
        return x - d_m * np.sin(yaw), y + d_m * np.cos(yaw), yaw

    def to_frenet(
        self, x_m: np.ndarray, y_m: np.ndarray, s_guess_m: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) -> (s, d) by projection onto the nearest centreline point.

        Without ``s_guess_m`` the nearest grid point comes from a k-d tree; with it (e.g. the
        projection of a nearby point) the search is skipped and a few local re-anchoring passes
        converge, which is several times faster for large batches.
        """
        x_m, y_m = np.broadcast_arrays(np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64))
        last = len(self._s) - 1
        if self._straight:  # one frame fits every point: the projection is closed-form
            frame = self._frame[0]
            dx, dy = x_m - frame[0], y_m - frame[1]
            return self._s[0] + dx * frame[2] + dy * frame[3], dy * frame[2] - dx * frame[3]
        if s_guess_m is None:
            _, index = self._tree.query(np.stack([x_m.reshape(-1), y_m.reshape(-1)], axis=1))
            index = index.reshape(x_m.shape)
        else:
            index = np.clip(np.rint(np.asarray(s_guess_m) / self._ds).astype(np.int64), 0, last)
            index = np.broadcast_to(index, x_m.shape)
        for _ in range(_PROJECTION_PASSES):
            frame = np.take(self._frame, index, axis=0)  # np.take: several times faster than fancy indexing
            along = (x_m - frame[..., 0]) * frame[..., 2] + (y_m - frame[..., 1]) * frame[..., 3]
            index = np.clip(index + np.rint(along / self._ds).astype(np.int64), 0, last)
        frame = np.take(self._frame, index, axis=0)
        dx, dy = x_m - frame[..., 0], y_m - frame[..., 1]
        cos, sin = frame[..., 2], frame[..., 3]
        return np.take(self._s, index) + dx * cos + dy * sin, dy * cos - dx * sin

    def trajectories_to_frenet(self, x_m: np.ndarray, y_m: np.ndarray, anchor_every: int = 5
                               ) -> tuple[np.ndarray, np.ndarray]:
        """``to_frenet`` for (..., T) trajectories: the k-d tree projects every ``anchor_every``-th step and
        the last, the steps between start from s interpolated between those (several times fewer queries)."""
        if self._straight:  # closed form: no anchors needed
            return self.to_frenet(x_m, y_m)
        x_m, y_m = np.broadcast_arrays(np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64))
        steps = x_m.shape[-1]
        anchors = np.unique(np.append(np.arange(0, steps, max(int(anchor_every), 1)), steps - 1))
        s_anchor, _ = self.to_frenet(x_m[..., anchors], y_m[..., anchors])
        if len(anchors) == 1:
            return self.to_frenet(x_m, y_m, s_guess_m=s_anchor)
        lower = np.clip(np.searchsorted(anchors, np.arange(steps), side="right") - 1, 0, len(anchors) - 2)
        frac = (np.arange(steps) - anchors[lower]) / (anchors[lower + 1] - anchors[lower])
        guess = s_anchor[..., lower] + frac * (s_anchor[..., lower + 1] - s_anchor[..., lower])
        return self.to_frenet(x_m, y_m, s_guess_m=guess)

    def contains_xy(self, x_m: np.ndarray, y_m: np.ndarray) -> BoolArray:
        """Whether each point lies inside the drivable area (shapely, vectorised)."""
        inside: BoolArray = shapely.contains_xy(self.drivable_area, x_m, y_m)
        return inside

    def nearest_lane_offset(self, d_m: float) -> float:
        """The usable lane centre closest to lateral offset d."""
        return float(self.lane_offsets_m[np.argmin(np.abs(self.lane_offsets_m - d_m))])

    def lane_index(self, d_m: float) -> int:
        """Index into ``lane_offsets_m`` of the lane closest to lateral offset d."""
        return int(np.argmin(np.abs(self.lane_offsets_m - d_m)))
