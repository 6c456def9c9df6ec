"""Synthetic highway scenes (car following + lane changes) as a TrackTable, for tests and development."""

from __future__ import annotations

import numpy as np

from rap_planner.data.tracks import TrackTable

LANE_WIDTH_M = 3.5
LANE_CHANGE_S = 4.0


def _idm_accel(v: np.ndarray, gap_m: np.ndarray, dv: np.ndarray, v_des: np.ndarray) -> np.ndarray:
    s_star = 2.0 + v * 1.5 + v * dv / (2.0 * np.sqrt(1.5 * 2.0))
    return 1.5 * (1.0 - (v / v_des) ** 4 - (np.maximum(s_star, 0.0) / np.maximum(gap_m, 0.5)) ** 2)


def _scene(rng: np.random.Generator, agents: int, steps: int, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(steps, agents, 2) positions and (steps, agents) presence of one straight 3-lane scene."""
    lane = rng.integers(0, 3, agents)
    x = np.sort(rng.uniform(0.0, 25.0 * agents, agents))
    v = rng.uniform(15.0, 30.0, agents)
    v_des = v + rng.uniform(-2.0, 5.0, agents)
    y0 = lane * LANE_WIDTH_M
    target_y, change_start = y0.copy(), np.full(agents, -1e9)
    xy = np.zeros((steps, agents, 2))
    for k in range(steps):
        t_s = k * dt_s
        starting = (rng.random(agents) < 0.08 * dt_s) & (t_s - change_start > LANE_CHANGE_S)
        for i in np.flatnonzero(starting):
            y0[i] = target_y[i]
            target_y[i] = np.clip(target_y[i] + rng.choice([-1, 1]) * LANE_WIDTH_M, 0.0, 2 * LANE_WIDTH_M)
            change_start[i] = t_s
        phase = np.clip((t_s - change_start) / LANE_CHANGE_S, 0.0, 1.0)
        y = y0 + (target_y - y0) * (1.0 - np.cos(np.pi * phase)) / 2.0
        same_lane = np.abs(y[None, :] - y[:, None]) < LANE_WIDTH_M / 2
        ahead = x[None, :] - x[:, None]
        ahead = np.where(same_lane & (ahead > 0), ahead, np.inf)
        leader = ahead.argmin(1)
        gap = ahead.min(1) - 4.5
        dv = np.where(np.isfinite(gap), v - v[leader], 0.0)
        accel = np.clip(_idm_accel(v, np.where(np.isfinite(gap), gap, 1e6), dv, v_des), -6.0, 2.0)
        xy[k, :, 0], xy[k, :, 1] = x, y
        v = np.maximum(v + accel * dt_s, 0.0)
        x = x + v * dt_s
    present = np.ones((steps, agents), bool)
    late = rng.random(agents) < 0.3
    present[: int(steps * 0.2), late] = False
    return xy, present


def make_highway_table(num_scenes: int = 6, duration_s: float = 20.0, dt_s: float = 0.1, agents: int = 8,
                       seed: int = 0, rotate: bool = True, noise_m: float = 0.0) -> TrackTable:
    """Scenes rotated/translated at random so a frame-invariant model is needed."""
    rng = np.random.default_rng(seed)
    steps = int(round(duration_s / dt_s))
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("scene", "frame", "agent_id", "x_m", "y_m", "yaw_rad",
                                                          "v_mps", "length_m", "width_m")}
    for scene in range(num_scenes):
        xy, present = _scene(rng, agents, steps, dt_s)
        angle = rng.uniform(-np.pi, np.pi) if rotate else 0.0
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        xy = xy @ rot.T + rng.uniform(-500.0, 500.0, 2) + rng.normal(0.0, noise_m, xy.shape)
        vel = np.gradient(xy, dt_s, axis=0)
        frame, agent = np.nonzero(present)
        cols["scene"].append(np.full(len(frame), scene))
        cols["frame"].append(frame)
        cols["agent_id"].append(agent + 100)
        cols["x_m"].append(xy[frame, agent, 0])
        cols["y_m"].append(xy[frame, agent, 1])
        cols["yaw_rad"].append(np.arctan2(vel[frame, agent, 1], vel[frame, agent, 0]))
        cols["v_mps"].append(np.hypot(vel[frame, agent, 0], vel[frame, agent, 1]))
        cols["length_m"].append(np.full(len(frame), 4.5))
        cols["width_m"].append(np.full(len(frame), 1.8))
    return TrackTable({c: np.concatenate(v) for c, v in cols.items()}, dt_s, {"source": "synthetic"})
