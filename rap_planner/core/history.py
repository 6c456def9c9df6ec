"""Per-agent track histories on the predictor's fixed time grid.

Trackers drop, duplicate and reorder messages; bags loop and simulators reset. The buffer keeps
what a predictor can trust and reports (never raises) what it had to drop.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rap_planner.core.types import TrackedAgent


@dataclass
class UpdateReport:
    """What one update accepted or dropped, and why (for throttled logs and diagnostics)."""

    accepted: int = 0
    dropped_nonfinite: int = 0
    dropped_duplicate_id: int = 0
    dropped_over_capacity: int = 0
    restarted_jump: int = 0  # tracks restarted because the agent jumped (an id reused by the tracker)
    rejected_stale_message: bool = False
    reset_time_jump: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass
class HistoryWindow:
    """Histories of the N agents to predict, resampled at ``now_s - (H-1-h) * dt_s`` for h in 0..H-1."""

    now_s: float
    agent_ids: np.ndarray  # (N,) int64
    positions_m: np.ndarray  # (N, H, 2) world frame, zero where mask is False
    mask: np.ndarray  # (N, H) bool: True where observed (interpolated between observations)
    sizes_m: np.ndarray  # (N, 2) length, width


class AgentHistoryBuffer:
    """Keeps the last ``history_s`` of each agent; forgets agents unseen for ``max_age_s``."""

    def __init__(self, history_s: float = 3.0, dt_s: float = 0.2, max_age_s: float = 1.0,
                 max_agents: int = 64, reset_on_jump_back_s: float = 1.0, backfill_s: float = 1.0,
                 max_jump_speed_mps: float = 100.0, jump_slack_m: float = 5.0):
        """``backfill_s``: a newly seen agent's history is extended this far into the past at its
        tracked velocity, so a predictor does not take a car that just appeared for a standing one.
        An observation farther from the agent's last one than ``max_jump_speed_mps`` * elapsed time +
        ``jump_slack_m`` is a different object under a reused id: its track starts over."""
        if not (history_s > 0 and dt_s > 0 and max_age_s > 0 and max_agents > 0):
            raise ValueError("history_s, dt_s, max_age_s and max_agents must be positive")
        self.history_s = history_s
        self.dt_s = dt_s
        self.num_steps = int(round(history_s / dt_s)) + 1
        self.max_age_s = max_age_s
        self.max_agents = max_agents
        self.reset_on_jump_back_s = reset_on_jump_back_s
        self.backfill_s = backfill_s
        self.max_jump_speed_mps = max_jump_speed_mps
        self.jump_slack_m = jump_slack_m
        self._tracks: dict[int, deque[tuple[float, float, float, float, float]]] = {}
        self._sizes: dict[int, tuple[float, float]] = {}
        self.last_stamp_s: float | None = None

    def __len__(self) -> int:
        return len(self._tracks)

    def reset(self) -> None:
        self._tracks.clear()
        self._sizes.clear()
        self.last_stamp_s = None

    def update(self, agents: list[TrackedAgent], stamp_s: float) -> UpdateReport:
        report = UpdateReport()
        if not math.isfinite(stamp_s):
            report.rejected_stale_message = True
            report.problems.append(f"non-finite stamp {stamp_s}")
            return report
        if self.last_stamp_s is not None and stamp_s <= self.last_stamp_s:
            if self.last_stamp_s - stamp_s > self.reset_on_jump_back_s:
                report.reset_time_jump = True
                report.problems.append(f"time jumped back {self.last_stamp_s - stamp_s:.2f} s: histories reset")
                self.reset()
            else:
                report.rejected_stale_message = True
                report.problems.append(f"stamp {stamp_s:.3f} s not after the last {self.last_stamp_s:.3f} s")
                return report
        self.last_stamp_s = stamp_s
        seen: set[int] = set()
        for agent in agents:
            self._add(agent, stamp_s, seen, report)
        self._forget_old(stamp_s)
        return report

    def _add(self, agent: TrackedAgent, stamp_s: float, seen: set[int], report: UpdateReport) -> None:
        if agent.agent_id in seen:
            report.dropped_duplicate_id += 1
            report.problems.append(f"agent {agent.agent_id} appears twice in one message")
            return
        if not (math.isfinite(agent.x_m) and math.isfinite(agent.y_m)):
            report.dropped_nonfinite += 1
            report.problems.append(f"agent {agent.agent_id}: non-finite position")
            return
        if agent.agent_id not in self._tracks and len(self._tracks) >= self.max_agents:
            report.dropped_over_capacity += 1
            return
        seen.add(agent.agent_id)
        track = self._tracks.setdefault(agent.agent_id, deque())
        if track:
            t_last, x_last, y_last = track[-1][:3]
            jump_m = math.hypot(agent.x_m - x_last, agent.y_m - y_last)
            if jump_m > self.max_jump_speed_mps * (stamp_s - t_last) + self.jump_slack_m:
                track.clear()
                report.restarted_jump += 1
                report.problems.append(f"agent {agent.agent_id} jumped {jump_m:.0f} m in {stamp_s - t_last:.2f} s: "
                                       "history restarted (id reused?)")
        vx, vy = (agent.vx_mps, agent.vy_mps) if math.isfinite(agent.vx_mps + agent.vy_mps) else (0.0, 0.0)
        track.append((stamp_s, agent.x_m, agent.y_m, vx, vy))
        while track and track[0][0] < stamp_s - self.history_s - 2 * self.dt_s:
            track.popleft()
        self._sizes[agent.agent_id] = (agent.length_m, agent.width_m)
        report.accepted += 1

    def _forget_old(self, now_s: float) -> None:
        for agent_id in [i for i, t in self._tracks.items() if now_s - t[-1][0] > self.max_age_s]:
            del self._tracks[agent_id]
            del self._sizes[agent_id]

    def window(self, now_s: float | None = None) -> HistoryWindow:
        """Linear interpolation onto the grid; grid times outside a track's span are masked."""
        now_s = self.last_stamp_s if now_s is None else now_s
        ids = np.array(sorted(self._tracks), dtype=np.int64)
        positions = np.zeros((len(ids), self.num_steps, 2))
        mask = np.zeros((len(ids), self.num_steps), dtype=bool)
        if now_s is None or len(ids) == 0:
            return HistoryWindow(0.0 if now_s is None else now_s, ids, positions, mask, np.zeros((len(ids), 2)))
        grid = now_s - self.dt_s * np.arange(self.num_steps - 1, -1, -1)
        for n, agent_id in enumerate(ids):
            track = np.asarray(self._tracks[int(agent_id)])
            t, x, y = track[:, 0], track[:, 1], track[:, 2]
            inside = (grid >= t[0] - 1e-6) & (grid <= t[-1] + 1e-6)
            inside[-1] = True  # the newest observation stands for "now" (it is at most max_age_s old)
            backfill = (grid < t[0] - 1e-6) & (grid >= t[0] - self.backfill_s - 1e-6)
            back_s = np.minimum(grid - t[0], 0.0)
            mask[n] = inside | backfill
            for axis, values in ((0, x), (1, y)):
                seeded = np.where(backfill, values[0] + track[0, 3 + axis] * back_s, 0.0)
                positions[n, :, axis] = np.where(inside, np.interp(grid, t, values), seeded)
        sizes = np.array([self._sizes[int(i)] for i in ids])
        return HistoryWindow(now_s, ids, positions, mask, sizes)
