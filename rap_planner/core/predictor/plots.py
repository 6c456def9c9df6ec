"""Evaluation figures (matplotlib's object API: renders with Agg, never touches the global backend)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from rap_planner.core.predictor.dataset import WindowSet

if TYPE_CHECKING:
    from rap_planner.core.predictor.evaluate import Predictions

VIEW_BEHIND_M = 40.0
VIEW_LATERAL_M = 25.0
NEAR_FOCAL_M = 40.0  # forecasts drawn only for scored agents this close to the focal one ...
MAX_DRAWN_AGENTS = 6  # ... and at most this many, nearest first


def plot_error_vs_horizon(results: dict[str, dict[str, Any]], dt_s: float, path: Path) -> None:
    """RMSE of the most likely mode and mean best-of-K error against the horizon, per forecaster."""
    fig = Figure(figsize=(10, 4))
    ax_rmse, ax_min = fig.subplots(1, 2)
    for name, res in results.items():
        t_s = (np.arange(len(res["rmse_per_step"])) + 1) * dt_s
        ax_rmse.plot(t_s, res["rmse_per_step"], label=name)
        ax_min.plot(t_s, res["min_error_per_step"], label=f"{name} (K={res['num_modes']})")
    ax_rmse.set(xlabel="horizon (s)", ylabel="RMSE of most likely mode (m)", title="RMSE vs horizon")
    ax_min.set(xlabel="horizon (s)", ylabel="mean min-over-modes error (m)", title="best-mode error vs horizon")
    for ax in (ax_rmse, ax_min):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_scenes(windows: WindowSet, preds: Predictions, path: Path, count: int) -> None:
    """Windows where constant velocity fails worst (one per scene), drawn in the focal agent's frame.

    Grey: histories; black dashed: truth; blue: most likely mode with 1σ/2σ ellipses each second;
    orange: other modes (opacity ~ weight); grey dotted: constant velocity. The lateral axis is
    stretched so lane-level motion stays visible.
    """
    chosen = _interesting_windows(windows, preds, count)
    cols = max(1, min(2, len(chosen)))
    rows = max(1, int(np.ceil(len(chosen) / cols)))
    fig = Figure(figsize=(8 * cols, 4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, w in zip(axes.ravel(), chosen, strict=False):
        _draw_window(ax, windows, preds, w)
    for ax in axes.ravel()[len(chosen):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _interesting_windows(windows: WindowSet, preds: Predictions, count: int) -> list[int]:
    cv_final = (preds.outputs["cv"][1][:, 0, -1, :2] - preds.target_m[:, -1]).norm(dim=-1).numpy()
    best: dict[int, tuple[float, int]] = {}
    for w, err in zip(preds.window, cv_final, strict=True):
        scene = int(windows.scene[w])
        if err > best.get(scene, (-1.0, -1))[0]:
            best[scene] = (float(err), int(w))
    ranked = sorted(best.values(), reverse=True)
    return [w for _, w in ranked[:count]]


def _focal_rotation(hist: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """World -> focal-frame rotation from the focal agent's displacement over its history."""
    pts = hist[mask]
    d = pts[-1] - pts[0] if len(pts) > 1 else np.array([1.0, 0.0])
    theta = np.arctan2(d[1], d[0]) if np.hypot(*d) > 0.5 else 0.0
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, s], [-s, c]])


def _draw_window(ax: Axes, windows: WindowSet, preds: Predictions, w: int) -> None:
    sub = windows.select([w])
    rot = _focal_rotation(sub.hist_m[0], sub.hist_mask[0])
    for hist, mask in zip(sub.hist_m, sub.hist_mask, strict=True):
        local = hist[mask] @ rot.T
        ax.plot(local[:, 0], local[:, 1], color="0.6", lw=1)
    logits, params = preds.outputs["model"]
    weights = torch.softmax(logits.double(), -1).numpy()
    steps_per_s = max(1, int(round(1.0 / windows.dt_s)))
    reach = VIEW_BEHIND_M
    agents = np.flatnonzero(preds.window == w)
    dist = np.hypot(*sub.hist_m[preds.slot[agents], -1].T)
    order = np.argsort(dist, kind="stable")[:MAX_DRAWN_AGENTS]
    for a in agents[order][dist[order] < NEAR_FOCAL_M]:
        truth = preds.target_m[a].numpy() @ rot.T
        reach = max(reach, float(truth[:, 0].max()))
        _draw_agent(ax, params[a].numpy(), weights[a], truth, preds.outputs["cv"][1][a, 0].numpy(), rot,
                    steps_per_s)
    ax.set_xlim(-VIEW_BEHIND_M, reach + 10.0)
    ax.set_ylim(-VIEW_LATERAL_M, VIEW_LATERAL_M)
    ax.set(xlabel="along focal heading (m)", ylabel="lateral (m)",
           title=f"scene {sub.scene[0]} frame {sub.frame[0]}")
    ax.grid(True, alpha=0.3)


def _draw_agent(ax: Axes, params: np.ndarray, weights: np.ndarray, truth: np.ndarray, cv_params: np.ndarray,
                rot: np.ndarray, steps_per_s: int) -> None:
    ax.plot(truth[:, 0], truth[:, 1], "k--", lw=1)
    cv = cv_params[:, :2] @ rot.T
    ax.plot(cv[:, 0], cv[:, 1], ":", color="tab:gray", lw=1)
    top = int(np.argmax(weights))
    for k in np.argsort(weights):
        mean = params[k, :, :2] @ rot.T
        ax.plot(mean[:, 0], mean[:, 1], color="tab:blue" if k == top else "tab:orange",
                alpha=float(0.25 + 0.75 * weights[k] / weights.max()), lw=1.5 if k == top else 1.0)
    for t in range(steps_per_s - 1, params.shape[1], steps_per_s):
        for n_sigma, alpha in ((1.0, 0.35), (2.0, 0.15)):
            ax.add_patch(_ellipse(params[top, t], rot, n_sigma, alpha))


def _ellipse(p: np.ndarray, rot: np.ndarray, n_sigma: float, alpha: float) -> Ellipse:
    cross = p[4] * p[2] * p[3]
    cov = rot @ np.array([[p[2] ** 2, cross], [cross, p[3] ** 2]]) @ rot.T
    vals, vecs = np.linalg.eigh(cov)
    angle = float(np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
    centre = rot @ p[:2]
    return Ellipse((centre[0], centre[1]), 2 * n_sigma * np.sqrt(max(vals[1], 0.0)),
                   2 * n_sigma * np.sqrt(max(vals[0], 0.0)), angle=angle, facecolor="tab:blue", edgecolor="none",
                   alpha=alpha)
