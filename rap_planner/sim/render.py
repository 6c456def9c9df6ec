"""Draws episodes: road from the net, vehicle footprints, and optional prediction / planning overlays.

Headless (matplotlib Agg). A PNG of one frame and an animation (GIF through Pillow, or MP4 when
ffmpeg is installed) that follows the ego. Frames are thinned to ``max_frames`` so a 15 s episode
renders in a few seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import EllipseCollection, LineCollection, PolyCollection  # noqa: E402

from rap_planner.core.types import EgoState, ForecastSet, Plan, TrackedAgent  # noqa: E402
from rap_planner.sim.geometry import lane_markings, lane_polygons  # noqa: E402
from rap_planner.sim.scenarios import ScenarioSpec, get_scenario  # noqa: E402

ROAD_COLOR = "#c8c8c8"
AGENT_COLOR = "#4c72b0"
EGO_COLOR = "#d62728"
PLAN_COLOR = "#2ca02c"
PRED_COLOR = "#ff7f0e"
ELLIPSE_EVERY = 5  # draw a covariance ellipse every this many forecast steps
ELLIPSE_SIGMA = 2.0


@dataclass
class EpisodeFrame:
    """What one rendered frame shows; overlays are optional and in world coordinates.

    ``pred_means_m[i]`` is (K, T, 2) for one agent with mode weights ``pred_weights[i]`` (K,) and,
    optionally, covariances ``pred_covs_m2[i]`` (K, T, 2, 2). Candidates are (C, T, 2) with risks (C,).
    """

    time_s: float
    ego: EgoState
    agents: list[TrackedAgent]
    pred_means_m: list[np.ndarray] = field(default_factory=list)
    pred_weights: list[np.ndarray] = field(default_factory=list)
    pred_covs_m2: list[np.ndarray] | None = None
    candidates_xy_m: np.ndarray | None = None
    candidates_risk: np.ndarray | None = None
    plan_xy_m: np.ndarray | None = None
    text: str = ""


def frame_from(time_s: float, ego: EgoState, agents: list[TrackedAgent], forecasts: ForecastSet | None = None,
               plan: Plan | None = None, text: str = "") -> EpisodeFrame:
    """Builds a frame from the shared core types (forecasts and plan are optional)."""
    frame = EpisodeFrame(time_s, ego, list(agents), text=text)
    if forecasts is not None:
        frame.pred_means_m = [f.means_m for f in forecasts.agents]
        frame.pred_weights = [f.weights for f in forecasts.agents]
        frame.pred_covs_m2 = [f.covariances_m2 for f in forecasts.agents]
    if plan is not None:
        frame.plan_xy_m = plan.states[:, :2]
        frame.candidates_xy_m = plan.candidates_xy_m
        frame.candidates_risk = plan.candidates_risk
    return frame


def _box_corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]]) * [length, width]
    return local @ np.array([[c, s], [-s, c]]) + [x, y]


def _draw_road(ax: Axes, net_path: Path) -> None:
    ax.add_collection(PolyCollection(lane_polygons(net_path), facecolors=ROAD_COLOR, edgecolors="none", zorder=0))
    solid, dashed = lane_markings(net_path)
    ax.add_collection(LineCollection(solid, colors="white", linewidths=1.0, zorder=1))
    ax.add_collection(LineCollection(dashed, colors="white", linewidths=0.8, linestyles=(0, (4, 4)), zorder=1))


def _draw_predictions(ax: Axes, frame: EpisodeFrame) -> list[Artist]:
    artists: list[Artist] = []
    segments, alphas, ellipses = [], [], []
    for i, (means, weights) in enumerate(zip(frame.pred_means_m, frame.pred_weights, strict=True)):
        for k in range(means.shape[0]):
            segments.append(means[k])
            alphas.append(0.25 + 0.75 * float(weights[k]))
            if frame.pred_covs_m2 is not None:
                for t in range(ELLIPSE_EVERY - 1, means.shape[1], ELLIPSE_EVERY):
                    ellipses.append((means[k, t], frame.pred_covs_m2[i][k, t], float(weights[k])))
    if segments:
        colors = [(*matplotlib.colors.to_rgb(PRED_COLOR), a) for a in alphas]
        artists.append(ax.add_collection(LineCollection(segments, colors=colors, linewidths=1.2, zorder=4)))
    if ellipses:
        artists.append(ax.add_collection(_ellipse_collection(ax, ellipses)))
    return artists


def _ellipse_collection(ax: Axes, ellipses: list[tuple[np.ndarray, np.ndarray, float]]) -> EllipseCollection:
    """Covariance ellipses (``ELLIPSE_SIGMA``-sigma) as one collection."""
    widths, heights, angles, centres, alphas = [], [], [], [], []
    for centre, cov, weight in ellipses:
        eigval, eigvec = np.linalg.eigh(cov)
        eigval = np.maximum(eigval, 1e-6)
        widths.append(2.0 * ELLIPSE_SIGMA * math.sqrt(eigval[1]))
        heights.append(2.0 * ELLIPSE_SIGMA * math.sqrt(eigval[0]))
        angles.append(math.degrees(math.atan2(eigvec[1, 1], eigvec[0, 1])))
        centres.append(centre)
        alphas.append(0.1 + 0.3 * weight)
    colors = [(*matplotlib.colors.to_rgb(PRED_COLOR), a) for a in alphas]
    return EllipseCollection(widths, heights, angles, units="xy", offsets=np.asarray(centres),
                             offset_transform=ax.transData, facecolors=colors, edgecolors="none", zorder=3)


def _draw_plan(ax: Axes, frame: EpisodeFrame) -> list[Artist]:
    artists: list[Artist] = []
    if frame.candidates_xy_m is not None and len(frame.candidates_xy_m):
        risks = np.zeros(len(frame.candidates_xy_m)) if frame.candidates_risk is None else frame.candidates_risk
        lines = LineCollection(list(frame.candidates_xy_m), cmap="RdYlGn_r", linewidths=0.7, alpha=0.7, zorder=5)
        lines.set_array(np.asarray(risks, dtype=float))
        lines.set_clim(float(np.min(risks)), float(np.max(risks)) + 1e-9)
        artists.append(ax.add_collection(lines))
    if frame.plan_xy_m is not None:
        artists += ax.plot(frame.plan_xy_m[:, 0], frame.plan_xy_m[:, 1], color=PLAN_COLOR, lw=2.2, zorder=6)
    return artists


def _draw_frame(ax: Axes, frame: EpisodeFrame, trace: np.ndarray, view_m: tuple[float, float]) -> list[Artist]:
    """Dynamic artists of one frame (removed before the next one is drawn)."""
    boxes = [_box_corners(a.x_m, a.y_m, a.yaw_rad, a.length_m, a.width_m) for a in frame.agents]
    ego = frame.ego
    artists: list[Artist] = [
        ax.add_collection(PolyCollection(boxes, facecolors=AGENT_COLOR, edgecolors="black", linewidths=0.4, zorder=7)),
        ax.add_collection(PolyCollection([_box_corners(ego.x_m, ego.y_m, ego.yaw_rad, ego.length_m, ego.width_m)],
                                         facecolors=EGO_COLOR, edgecolors="black", linewidths=0.6, zorder=8)),
    ]
    if len(trace) > 1:
        artists += ax.plot(trace[:, 0], trace[:, 1], color=EGO_COLOR, lw=0.8, alpha=0.6, zorder=2)
    artists += _draw_predictions(ax, frame)
    artists += _draw_plan(ax, frame)
    label = f"t = {frame.time_s:5.1f} s   v = {ego.v_mps:4.1f} m/s" + (f"   {frame.text}" if frame.text else "")
    artists.append(ax.text(0.01, 0.97, label, transform=ax.transAxes, va="top", fontsize=8, zorder=9,
                           bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"}))
    ax.set_xlim(ego.x_m - 0.5 * view_m[0], ego.x_m + 0.5 * view_m[0])
    ax.set_ylim(ego.y_m - 0.5 * view_m[1], ego.y_m + 0.5 * view_m[1])
    return artists


def _default_view(net_path: Path) -> tuple[float, float]:
    """A wide strip for long straight nets, a square for junctions."""
    xy = np.concatenate(lane_polygons(net_path))
    extent = xy.max(axis=0) - xy.min(axis=0)
    return (160.0, 36.0) if extent[1] < 0.2 * extent[0] else (90.0, 90.0)


def _figure(view_m: tuple[float, float], width_in: float) -> tuple[plt.Figure, Axes]:
    fig, ax = plt.subplots(figsize=(width_in, max(1.8, width_in * view_m[1] / view_m[0])))
    ax.set_aspect("equal")
    ax.set_facecolor("#6a9955")
    ax.tick_params(labelsize=6)
    fig.tight_layout(pad=0.3)
    return fig, ax


def render_episode(frames: list[EpisodeFrame], out_png: str | Path | None, out_anim: str | Path | None = None, *,
                   scenario: str | ScenarioSpec, view_m: tuple[float, float] | None = None,
                   max_frames: int = 80, png_frame: int = -1, width_in: float = 8.0, dpi: int = 80) -> list[Path]:
    """Writes a PNG of ``frames[png_frame]`` and/or a GIF/MP4 of the episode; returns the written paths.

    The camera follows the ego over a ``view_m`` (width, height) window of the world. Playback is
    real time: thinned frames play at a correspondingly lower frame rate.
    """
    if not frames:
        raise ValueError("no frames to render")
    spec = scenario if isinstance(scenario, ScenarioSpec) else get_scenario(scenario)
    view = view_m or _default_view(spec.net_path)
    trace = np.array([[f.ego.x_m, f.ego.y_m] for f in frames])
    fig, ax = _figure(view, width_in)
    _draw_road(ax, spec.net_path)
    written = []
    try:
        if out_png is not None:
            index = png_frame % len(frames)
            artists = _draw_frame(ax, frames[index], trace[:index + 1], view)
            fig.savefig(out_png, dpi=dpi)
            written.append(Path(out_png))
            for artist in artists:
                artist.remove()
        if out_anim is not None:
            written.append(_write_animation(fig, ax, frames, trace, view, Path(out_anim), max_frames, dpi))
    finally:
        plt.close(fig)
    return written


def _write_animation(fig: plt.Figure, ax: Axes, frames: list[EpisodeFrame], trace: np.ndarray,
                     view: tuple[float, float], out: Path, max_frames: int, dpi: int) -> Path:
    stride = max(1, math.ceil(len(frames) / max_frames))
    dt_s = (frames[-1].time_s - frames[0].time_s) / max(len(frames) - 1, 1) or 0.1
    fps = max(1.0, 1.0 / (dt_s * stride))
    writer = animation.FFMpegWriter(fps=fps) if out.suffix == ".mp4" else animation.PillowWriter(fps=fps)
    with writer.saving(fig, str(out), dpi):
        for index in range(0, len(frames), stride):
            artists = _draw_frame(ax, frames[index], trace[:index + 1], view)
            writer.grab_frame()
            for artist in artists:
                artist.remove()
    return out
