"""Per-agent track histories on the predictor's fixed time grid.

Trackers drop, duplicate and reorder messages; bags loop and simulators reset. The buffer keeps
what a predictor can trust and reports (never raises) what it had to drop.
"""

from __future__ import annotations

import math
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
    """Histories of the N agents to predict, resampled at ``now_s - (H-1-h) * dt_s`` for h in 0..H-1.

    ``ForecastModel.predict`` takes it as it is (no per-agent dicts).
    """

    now_s: float
    agent_ids: np.ndarray  # (N,) int64
    positions_m: np.ndarray  # (N, H, 2) world frame, zero where mask is False
    mask: np.ndarray  # (N, H) bool: True where observed (interpolated between observations)
    sizes_m: np.ndarray  # (N, 2) length, width


class AgentHistoryBuffer:
    """Keeps the last ``history_s`` of each agent; forgets agents unseen for ``max_age_s``.

    Observations live in arrays (one row per agent, one column per accepted message, "frame") so that
    ``window`` resamples every agent at once: the predictor runs it for hundreds of agents at 20 Hz.
    A track is the row's held cells (``_held``); the rest of the row is empty or not part of it.
    """

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
        self.reset()

    def __len__(self) -> int:
        return len(self._rows)

    def reset(self) -> None:
        self._rows: dict[int, int] = {}  # agent id -> its row
        self._newest: dict[int, tuple[float, float, float]] = {}  # agent id -> (t, x, y) of its newest observation
        self._free_rows: list[int] = []
        self._num_frames = 0
        self._stamps = np.zeros(0)  # (frames,) increasing
        self._obs = np.zeros((0, 0, 4))  # (rows, frames, 4): x, y, vx, vy
        self._held = np.zeros((0, 0), dtype=bool)  # (rows, frames): True where the row's track has that observation
        self._sizes = np.zeros((0, 2))  # (rows, 2): newest length, width
        self.last_stamp_s: float | None = None

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
        frame = _Frame()
        for agent in agents:
            self._add(agent, stamp_s, frame, report)
        if frame.rows:
            self._store(frame, stamp_s)
        self._forget_old(stamp_s)
        return report

    def _add(self, agent: TrackedAgent, stamp_s: float, frame: _Frame, report: UpdateReport) -> None:
        """Check one agent and queue its observation in ``frame`` (stored for all agents at once)."""
        if agent.agent_id in frame.ids:
            report.dropped_duplicate_id += 1
            report.problems.append(f"agent {agent.agent_id} appears twice in one message")
            return
        if not (math.isfinite(agent.x_m) and math.isfinite(agent.y_m)):
            report.dropped_nonfinite += 1
            report.problems.append(f"agent {agent.agent_id}: non-finite position")
            return
        row = self._rows.get(agent.agent_id)
        if row is None:
            if len(self._rows) >= self.max_agents:
                report.dropped_over_capacity += 1
                return
            row = self._rows[agent.agent_id] = self._new_row()
        frame.ids.add(agent.agent_id)
        newest = self._newest.get(agent.agent_id)
        if newest is not None:
            t_last, x_last, y_last = newest
            jump_m = math.hypot(agent.x_m - x_last, agent.y_m - y_last)
            if jump_m > self.max_jump_speed_mps * (stamp_s - t_last) + self.jump_slack_m:
                frame.restarted.append(row)
                report.restarted_jump += 1
                report.problems.append(f"agent {agent.agent_id} jumped {jump_m:.0f} m in {stamp_s - t_last:.2f} s: "
                                       "history restarted (id reused?)")
        vx, vy = (agent.vx_mps, agent.vy_mps) if math.isfinite(agent.vx_mps + agent.vy_mps) else (0.0, 0.0)
        self._newest[agent.agent_id] = (stamp_s, agent.x_m, agent.y_m)
        frame.rows.append(row)
        frame.values += (agent.x_m, agent.y_m, vx, vy, agent.length_m, agent.width_m)
        report.accepted += 1

    def _store(self, frame: _Frame, stamp_s: float) -> None:
        """Write one message's observations; each observed track keeps ``history_s`` + two steps of them."""
        column = self._new_frame(stamp_s)
        rows = np.array(frame.rows)
        values = np.array(frame.values, dtype=np.float64).reshape(len(rows), 6)
        self._held[frame.restarted] = False
        self._obs[rows, column] = values[:, :4]
        self._held[rows, column] = True
        self._sizes[rows] = values[:, 4:]
        too_old = np.searchsorted(self._stamps[:self._num_frames], stamp_s - self.history_s - 2 * self.dt_s)
        self._held[rows, :too_old] = False

    def _new_row(self) -> int:
        """A free row (its cells all unheld), doubling the rows when none is left."""
        if not self._free_rows:
            old = len(self._held)
            self._grow(rows=max(16, 2 * old), frames=self._stamps.size)
            self._free_rows = list(range(len(self._held) - 1, old - 1, -1))
        return self._free_rows.pop()

    def _new_frame(self, stamp_s: float) -> int:
        """Append a column; when full, first drop the oldest ones no track holds, growing if that frees too few."""
        if self._num_frames == self._stamps.size:
            self._drop_unheld_frames()
            if 2 * self._num_frames >= self._stamps.size:
                self._grow(rows=len(self._held), frames=max(16, 2 * self._stamps.size))
        self._stamps[self._num_frames] = stamp_s
        self._num_frames += 1
        return self._num_frames - 1

    def _drop_unheld_frames(self) -> None:
        """Shift out the leading columns whose observations every track has trimmed or forgotten."""
        held = self._held[:, :self._num_frames].any(0)
        start = int(held.argmax()) if held.any() else self._num_frames
        kept = slice(start, self._num_frames)
        self._num_frames -= start
        self._stamps[:self._num_frames] = self._stamps[kept]
        self._obs[:, :self._num_frames] = self._obs[:, kept]
        self._held[:, :self._num_frames] = self._held[:, kept]
        self._held[:, self._num_frames:] = False  # stale cells must not join later frames

    def _grow(self, rows: int, frames: int) -> None:
        """Reallocate the arrays to ``rows`` x ``frames``, keeping their contents."""
        old_rows, old_frames = self._held.shape
        stamps, obs, held, sizes = (np.zeros(frames), np.zeros((rows, frames, 4)), np.zeros((rows, frames), bool),
                                    np.zeros((rows, 2)))
        stamps[:old_frames] = self._stamps
        obs[:old_rows, :old_frames] = self._obs
        held[:old_rows, :old_frames] = self._held
        sizes[:old_rows] = self._sizes
        self._stamps, self._obs, self._held, self._sizes = stamps, obs, held, sizes

    def _forget_old(self, now_s: float) -> None:
        for agent_id in [i for i, (t, _, _) in self._newest.items() if now_s - t > self.max_age_s]:
            row = self._rows.pop(agent_id)
            del self._newest[agent_id]
            self._held[row] = False
            self._free_rows.append(row)

    def window(self, now_s: float | None = None) -> HistoryWindow:
        """Linear interpolation onto the grid; grid times outside a track's span are masked."""
        now_s = self.last_stamp_s if now_s is None else now_s
        ids = np.array(sorted(self._rows), dtype=np.int64)
        if now_s is None or len(ids) == 0:
            return HistoryWindow(0.0 if now_s is None else now_s, ids, np.zeros((len(ids), self.num_steps, 2)),
                                 np.zeros((len(ids), self.num_steps), dtype=bool), np.zeros((len(ids), 2)))
        rows = np.array([self._rows[i] for i in ids.tolist()])
        held = self._held[rows, :self._num_frames]
        frames = slice(int(held.any(0).argmax()), self._num_frames)  # older columns hold nothing of these tracks
        grid = now_s - self.dt_s * np.arange(self.num_steps - 1, -1, -1)
        positions, mask = _resample(grid, self._stamps[frames], held[:, frames], self._obs[rows, frames],
                                    self.backfill_s)
        return HistoryWindow(now_s, ids, positions, mask, self._sizes[rows])


@dataclass
class _Frame:
    """One message's accepted observations, gathered before they are written to the arrays together."""

    ids: set[int] = field(default_factory=set)
    rows: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # x, y, vx, vy, length, width per row: flat converts faster
    restarted: list[int] = field(default_factory=list)  # rows whose earlier observations are another object's


def _resample(grid: np.ndarray, stamps: np.ndarray, held: np.ndarray, obs: np.ndarray, backfill_s: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Every track at the grid times: (N, H, 2) positions and (N, H) mask from (N, F) held cells of ``obs``.

    Per track this is ``np.interp`` over its held stamps inside its span (its ends outside it, within
    1 us), a backfill at its first velocity up to ``backfill_s`` before it, and masked zeros elsewhere.
    """
    agents = np.arange(len(held))[:, None]
    first = held.argmax(1)[:, None]
    last = held.shape[1] - 1 - held[:, ::-1].argmax(1)[:, None]
    t0, t1 = stamps[first], stamps[last]
    inside = (grid >= t0 - 1e-6) & (grid <= t1 + 1e-6)
    inside[:, -1] = True  # the newest observation stands for "now" (it is at most max_age_s old)
    backfill = (grid < t0 - 1e-6) & (grid >= t0 - backfill_s - 1e-6)
    back_s = np.minimum(grid - t0, 0.0)
    seeded = np.where(backfill[..., None], obs[agents, first, :2] + obs[agents, first, 2:] * back_s[..., None], 0.0)
    positions = np.where(inside[..., None], _interpolate(grid, stamps, held, obs[..., :2], first, last), seeded)
    return positions, inside | backfill


def _interpolate(grid: np.ndarray, stamps: np.ndarray, held: np.ndarray, xy: np.ndarray, first: np.ndarray,
                 last: np.ndarray) -> np.ndarray:
    """``np.interp`` of each track's held (stamp, xy) at the grid times, term for term: (N, H, 2)."""
    columns = np.arange(held.shape[1])
    newest_held = np.maximum.accumulate(np.where(held, columns, -1), axis=1)  # newest held column <= each column
    oldest_held = np.minimum.accumulate(np.where(held, columns, len(columns))[:, ::-1], axis=1)[:, ::-1]  # >= each
    before = np.searchsorted(stamps, grid, side="right") - 1  # newest column at or before each grid time
    lo = np.where(before >= 0, newest_held[:, before], -1)  # the track's point at or before each grid time
    on_point = (lo < 0) | (lo == last) | (stamps[lo] == grid)  # before, after or on one of its points
    lo = np.where(lo < 0, first, lo)
    agents = np.arange(len(held))[:, None]
    out = xy[agents, lo]
    n, h = np.nonzero(~on_point)
    a = lo[n, h]
    b = oldest_held[n, a + 1]
    slope = (xy[n, b] - xy[n, a]) / (stamps[b] - stamps[a])[:, None]
    out[n, h] = slope * (grid[h] - stamps[a])[:, None] + xy[n, a]
    return out
