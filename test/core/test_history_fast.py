"""The vectorised buffer against a per-agent reference: same reports, bit-identical windows."""

import math

import numpy as np
import pytest

from rap_planner.core.history import AgentHistoryBuffer, HistoryWindow
from rap_planner.core.types import TrackedAgent


class ReferenceBuffer:
    """The buffer's rules written per agent and per observation, with ``np.interp`` (slow, obvious)."""

    def __init__(self, buffer: AgentHistoryBuffer):
        self.b = buffer  # settings only: read at every call, so runtime changes apply to both
        self.tracks: dict[int, list[tuple[float, float, float, float, float]]] = {}
        self.sizes: dict[int, tuple[float, float]] = {}
        self.last_stamp_s: float | None = None

    def update(self, agents: list[TrackedAgent], stamp_s: float) -> None:
        if not math.isfinite(stamp_s):
            return
        if self.last_stamp_s is not None and stamp_s <= self.last_stamp_s:
            if self.last_stamp_s - stamp_s <= self.b.reset_on_jump_back_s:
                return
            self.tracks, self.sizes = {}, {}
        self.last_stamp_s = stamp_s
        seen = set()
        for a in agents:
            if a.agent_id in seen or not (math.isfinite(a.x_m) and math.isfinite(a.y_m)):
                continue
            if a.agent_id not in self.tracks and len(self.tracks) >= self.b.max_agents:
                continue
            seen.add(a.agent_id)
            track = self.tracks.setdefault(a.agent_id, [])
            if track and (math.hypot(a.x_m - track[-1][1], a.y_m - track[-1][2])
                          > self.b.max_jump_speed_mps * (stamp_s - track[-1][0]) + self.b.jump_slack_m):
                track.clear()
            velocity = (a.vx_mps, a.vy_mps) if math.isfinite(a.vx_mps + a.vy_mps) else (0.0, 0.0)
            track.append((stamp_s, a.x_m, a.y_m, *velocity))
            track[:] = [o for o in track if o[0] >= stamp_s - self.b.history_s - 2 * self.b.dt_s]
            self.sizes[a.agent_id] = (a.length_m, a.width_m)
        for agent_id in [i for i, t in self.tracks.items() if stamp_s - t[-1][0] > self.b.max_age_s]:
            del self.tracks[agent_id], self.sizes[agent_id]

    def window(self, now_s: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        now_s = self.last_stamp_s if now_s is None else now_s
        ids = sorted(self.tracks)
        positions = np.zeros((len(ids), self.b.num_steps, 2))
        mask = np.zeros((len(ids), self.b.num_steps), dtype=bool)
        grid = now_s - self.b.dt_s * np.arange(self.b.num_steps - 1, -1, -1) if ids else None
        for n, agent_id in enumerate(ids):
            t, x, y, vx, vy = np.array(self.tracks[agent_id]).T
            for h, g in enumerate(grid):
                backfill = t[0] - self.b.backfill_s - 1e-6 <= g < t[0] - 1e-6
                if t[0] - 1e-6 <= g <= t[-1] + 1e-6 or h == len(grid) - 1:
                    positions[n, h] = np.interp(g, t, x), np.interp(g, t, y)
                    mask[n, h] = True
                elif backfill:
                    back_s = min(g - t[0], 0.0)
                    positions[n, h] = x[0] + vx[0] * back_s, y[0] + vy[0] * back_s
                    mask[n, h] = True
        sizes = np.array([self.sizes[i] for i in ids], dtype=np.float64).reshape(-1, 2)
        return np.array(ids, dtype=np.int64), positions, mask, sizes


def _traffic(rng: np.random.Generator, pool: np.ndarray, stamp_s: float) -> list[TrackedAgent]:
    """A random subset of the pool with NaN positions, bad velocities, duplicates and reused ids mixed in."""
    agents = []
    for i in rng.permutation(len(pool))[:rng.integers(0, len(pool) + 1)]:
        x, y, vx, vy = pool[i]
        if rng.random() < 0.05:
            x = math.nan
        if rng.random() < 0.03:
            x += 1000.0  # the tracker reuses this id for an object far away
        if rng.random() < 0.05:
            vx = math.inf
        agents.append(TrackedAgent(int(i), stamp_s, float(x), float(y), 0.0, float(vx), float(vy),
                                   float(rng.uniform(3.0, 6.0)), float(rng.uniform(1.0, 2.5))))
        if rng.random() < 0.03:
            agents.append(agents[-1])
    return agents


def _assert_same(window: HistoryWindow, reference: tuple[np.ndarray, ...]) -> None:
    for name, expected in zip(("agent_ids", "positions_m", "mask", "sizes_m"), reference, strict=True):
        actual = getattr(window, name)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, name
        assert actual.tobytes() == expected.tobytes(), name  # bit for bit


@pytest.mark.parametrize("seed", range(40))
def test_window_matches_the_per_agent_reference_on_random_traffic(seed):
    rng = np.random.default_rng(seed)
    buffer = AgentHistoryBuffer(history_s=float(rng.choice([1.0, 3.0])), dt_s=float(rng.choice([0.1, 0.2])),
                                max_age_s=float(rng.uniform(0.2, 2.0)), max_agents=int(rng.integers(1, 30)),
                                backfill_s=float(rng.choice([0.0, 0.4, 1.0])))
    reference = ReferenceBuffer(buffer)
    pool = np.column_stack((rng.uniform(-100.0, 100.0, (30, 2)), rng.uniform(-30.0, 30.0, (30, 2))))
    stamp_s = float(rng.uniform(-5.0, 5.0))
    for _ in range(80):
        r = rng.random()
        if r < 0.03:
            stamp_s -= float(rng.uniform(0.0, 3.0))  # back in time: a stale message or a reset
        elif r > 0.05:  # else the same stamp again
            stamp_s += float(rng.choice([0.013, 0.05, 0.1, 0.2, 0.5, 1.5], p=[0.2, 0.4, 0.2, 0.1, 0.07, 0.03]))
        pool[:, :2] += 0.05 * pool[:, 2:]
        agents = _traffic(rng, pool, stamp_s)
        buffer.update(agents, stamp_s)
        reference.update(agents, stamp_s)
        if rng.random() < 0.1:  # the node changes these at runtime
            buffer.max_agents = int(rng.integers(1, 30))
            buffer.max_age_s = float(rng.uniform(0.2, 2.0))
        now_s = None if rng.random() < 0.8 else stamp_s + float(rng.uniform(-0.5, 0.5))
        assert len(buffer) == len(reference.tracks)
        _assert_same(buffer.window(now_s), reference.window(now_s))


def test_storage_stays_bounded_over_a_long_run():
    buffer = AgentHistoryBuffer(history_s=3.0, dt_s=0.2, max_age_s=1.0, max_agents=200)
    for k in range(2000):
        stamp_s = 0.05 * k
        first = k // 100  # agents come and go: a few hundred ids over the run
        buffer.update([TrackedAgent(i, stamp_s, 20.0 * stamp_s, float(i), 0.0, 20.0, 0.0)
                       for i in range(first, first + 50)], stamp_s)
    frames_needed = (3.0 + 2 * 0.2 + 1.0) / 0.05 + 1
    assert len(buffer) == 50
    assert buffer._held.shape[0] <= 2 * 51 and buffer._held.shape[1] <= 4 * frames_needed  # the arrays double
