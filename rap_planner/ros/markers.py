"""RViz / Foxglove markers for forecasts and plans (visualisation only, never read back)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from rap_planner.core.types import ForecastSet, Plan

ELLIPSE_STEPS_S = (1.0, 3.0, 5.0)  # forecast times that get a covariance ellipse
ELLIPSE_SIGMA = 2.0  # ellipse radius in standard deviations (about 86 % of the mass in 2-D)
MEAN_STRIDE = 3
_LIFETIME = Duration(sec=1)


def _points(xy: np.ndarray, z_m: float = 0.2) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=z_m) for x, y in xy]


def _line(header: Header, ns: str, marker_id: int, xy: np.ndarray, color: ColorRGBA, width_m: float) -> Marker:
    m = Marker(header=header, ns=ns, id=marker_id, type=Marker.LINE_STRIP, action=Marker.ADD, lifetime=_LIFETIME)
    m.pose.orientation.w = 1.0
    m.scale.x = width_m
    m.color = color
    m.points = _points(xy)
    return m


def covariance_ellipse(mean_m: np.ndarray, cov_m2: np.ndarray, sigma: float = ELLIPSE_SIGMA,
                       segments: int = 24) -> np.ndarray:
    """Closed polyline (segments+1, 2) of the ``sigma`` contour of a 2-D Gaussian."""
    vals, vecs = np.linalg.eigh(0.5 * (cov_m2 + cov_m2.T))
    radii = sigma * np.sqrt(np.clip(vals, 0.0, None))
    angle = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    circle = np.stack([np.cos(angle) * radii[0], np.sin(angle) * radii[1]], axis=1)
    return mean_m + circle @ vecs.T


def forecast_markers(forecasts: ForecastSet, frame_id: str, header: Header | None = None) -> MarkerArray:
    """Mode means as lines and covariance ellipses at a few horizons; opacity follows mode weight."""
    header = header or Header(frame_id=frame_id)
    out = MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
    ellipse_steps = [int(round(t / forecasts.dt_s)) - 1 for t in ELLIPSE_STEPS_S]
    marker_id = 0
    for agent in forecasts.agents:
        for k, weight in enumerate(agent.weights):
            alpha = float(0.15 + 0.85 * weight)
            color = ColorRGBA(r=0.1, g=0.5, b=1.0, a=alpha)
            means = agent.means_m[k, MEAN_STRIDE - 1::MEAN_STRIDE]  # every MEAN_STRIDE-th step: enough to see
            out.markers.append(_line(header, "prediction/means", marker_id, means, color, 0.15))
            marker_id += 1
            for step in ellipse_steps:
                if 0 <= step < agent.means_m.shape[1]:
                    ring = covariance_ellipse(agent.means_m[k, step], agent.covariances_m2[k, step], segments=12)
                    out.markers.append(_line(header, "prediction/ellipses", marker_id, ring,
                                             ColorRGBA(r=0.1, g=0.5, b=1.0, a=0.6 * alpha), 0.05))
                    marker_id += 1
    return out


def risk_color(value: float, low: float, high: float) -> ColorRGBA:
    """Green (low risk) to red (high risk)."""
    u = 0.0 if high <= low else float(np.clip((value - low) / (high - low), 0.0, 1.0))
    return ColorRGBA(r=u, g=1.0 - u, b=0.0, a=0.5)


def plan_markers(plan: Plan, frame_id: str, header: Header | None = None) -> MarkerArray:
    """The chosen plan (thick; white when ok, orange on fallback) and a few candidates coloured by risk."""
    header = header or Header(frame_id=frame_id)
    out = MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
    chosen = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0) if plan.ok else ColorRGBA(r=1.0, g=0.5, b=0.0, a=1.0)
    out.markers.append(_line(header, "plan/chosen", 0, plan.states[:, :2], chosen, 0.4))
    if plan.candidates_xy_m is not None and plan.candidates_risk is not None and len(plan.candidates_risk):
        risks = np.asarray(plan.candidates_risk, dtype=float)
        finite = risks[np.isfinite(risks)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        for i, (xy, risk) in enumerate(zip(plan.candidates_xy_m, risks, strict=True)):
            out.markers.append(_line(header, "plan/candidates", i + 1, xy, risk_color(risk, low, high), 0.08))
    return out
