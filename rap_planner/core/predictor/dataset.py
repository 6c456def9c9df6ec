"""Training windows cut from a ``TrackTable``.

A window is one (scene, frame): the agents present at that frame (capped to the ones nearest a focal
agent), their last H positions and next T positions on the predictor's time grid, with masks where a
track has no point. Positions are stored relative to the window origin (the focal agent's current
position) in float32; the origin itself is kept in float64 so projected or global coordinates
(NGSIM's are ~1e6 m) lose no precision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rap_planner.core.predictor.model import PredictorConfig
from rap_planner.data.tracks import COLUMNS, TrackTable, split_scenes

SCENE_SPLITS = ("train", "val", "test")


@dataclass
class WindowSet:
    """Windows stored flat: agents of window ``s`` are rows ``offsets[s]:offsets[s + 1]``."""

    hist_m: np.ndarray  # (A, H, 2) float32, relative to the window origin
    hist_mask: np.ndarray  # (A, H) bool
    fut_m: np.ndarray  # (A, T, 2) float32
    fut_mask: np.ndarray  # (A, T) bool
    agent_id: np.ndarray  # (A,) int64
    offsets: np.ndarray  # (S + 1,) int64
    scene: np.ndarray  # (S,) int64
    frame: np.ndarray  # (S,) int64, frame index of the current step in the source table
    origin_m: np.ndarray  # (S, 2) float64, world position of the window origin
    dt_s: float

    def __len__(self) -> int:
        return len(self.scene)

    @property
    def num_agents(self) -> int:
        return len(self.agent_id)

    @property
    def agents_per_window(self) -> np.ndarray:
        return np.diff(self.offsets)

    def select(self, indices: Sequence[int] | np.ndarray) -> WindowSet:
        indices = np.asarray(indices, dtype=np.int64)
        rows = _rows_of(self.offsets, indices)
        counts = self.agents_per_window[indices]
        return WindowSet(self.hist_m[rows], self.hist_mask[rows], self.fut_m[rows], self.fut_mask[rows],
                         self.agent_id[rows], np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
                         self.scene[indices], self.frame[indices], self.origin_m[indices], self.dt_s)

    @staticmethod
    def concatenate(sets: Sequence[WindowSet]) -> WindowSet:
        if not sets:
            raise ValueError("nothing to concatenate")
        if len({round(s.dt_s, 9) for s in sets}) > 1:
            raise ValueError("window sets have different dt_s")
        counts = np.concatenate([s.agents_per_window for s in sets])
        rows = {f: np.concatenate([getattr(s, f) for s in sets])
                for f in ("hist_m", "hist_mask", "fut_m", "fut_mask", "agent_id", "scene", "frame", "origin_m")}
        return WindowSet(**rows, offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
                         dt_s=sets[0].dt_s)

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """Pad the chosen windows to the largest agent count among them."""
        indices = np.asarray(indices, dtype=np.int64)
        counts = self.agents_per_window[indices]
        b, n = len(indices), max(int(counts.max(initial=0)), 1)
        slots = np.arange(n)[None, :] < counts[:, None]  # (B, N)
        rows = _rows_of(self.offsets, indices)
        hist = np.zeros((b, n) + self.hist_m.shape[1:], np.float32)
        hist_mask = np.zeros((b, n) + self.hist_mask.shape[1:], bool)
        fut = np.zeros((b, n) + self.fut_m.shape[1:], np.float32)
        fut_mask = np.zeros((b, n) + self.fut_mask.shape[1:], bool)
        hist[slots], hist_mask[slots] = self.hist_m[rows], self.hist_mask[rows]
        fut[slots], fut_mask[slots] = self.fut_m[rows], self.fut_mask[rows]
        return Batch(torch.from_numpy(hist), torch.from_numpy(hist_mask), torch.from_numpy(fut),
                     torch.from_numpy(fut_mask), torch.from_numpy(slots), self.origin_m[indices], indices)


@dataclass
class Batch:
    """Padded tensors for a batch of windows (positions relative to ``origin_m``)."""

    hist_m: torch.Tensor  # (B, N, H, 2)
    hist_mask: torch.Tensor  # (B, N, H)
    fut_m: torch.Tensor  # (B, N, T, 2)
    fut_mask: torch.Tensor  # (B, N, T)
    agent_mask: torch.Tensor  # (B, N) slot holds an agent
    origin_m: np.ndarray  # (B, 2)
    indices: np.ndarray  # (B,) window indices


def _rows_of(offsets: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Flat agent rows of the given windows, in window order."""
    starts, stops = offsets[indices], offsets[indices + 1]
    counts = stops - starts
    if counts.sum() == 0:
        return np.zeros(0, np.int64)
    base = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return base + np.arange(counts.sum())


def resample_table(table: TrackTable, dt_s: float) -> TrackTable:
    """Linearly interpolate every track onto a ``dt_s`` grid (only inside gap-free stretches)."""
    cols = table.columns
    order = np.lexsort((cols["frame"], cols["agent_id"], cols["scene"]))
    key = np.stack((cols["scene"][order], cols["agent_id"][order]), 1)
    breaks = np.flatnonzero(np.any(key[1:] != key[:-1], axis=1) | (np.diff(cols["frame"][order]) != 1)) + 1
    pieces: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    for segment in np.split(order, breaks):
        _resample_segment(cols, segment, table.dt_s, dt_s, pieces)
    out = {c: np.concatenate(pieces[c]) if pieces[c] else np.zeros(0, dtype) for c, dtype in COLUMNS.items()}
    return TrackTable(out, dt_s, {**table.meta, "resampled_from_dt_s": table.dt_s})


def _resample_segment(cols: dict[str, np.ndarray], rows: np.ndarray, old_dt_s: float, new_dt_s: float,
                      pieces: dict[str, list[np.ndarray]]) -> None:
    t_s = cols["frame"][rows] * old_dt_s
    first = int(np.ceil(t_s[0] / new_dt_s - 1e-9))
    last = int(np.floor(t_s[-1] / new_dt_s + 1e-9))
    if last < first:
        return
    frames = np.arange(first, last + 1)
    new_t_s = frames * new_dt_s
    for c in ("x_m", "y_m", "v_mps", "length_m", "width_m"):
        pieces[c].append(np.interp(new_t_s, t_s, cols[c][rows]))
    pieces["yaw_rad"].append(np.angle(np.exp(1j * np.interp(new_t_s, t_s, np.unwrap(cols["yaw_rad"][rows])))))
    pieces["frame"].append(frames)
    pieces["scene"].append(np.full(len(frames), cols["scene"][rows[0]]))
    pieces["agent_id"].append(np.full(len(frames), cols["agent_id"][rows[0]]))


def _on_grid(table: TrackTable, dt_s: float) -> tuple[TrackTable, int]:
    """The table and the frame stride that realise ``dt_s``: stride if it is a whole multiple, else resample."""
    ratio = dt_s / table.dt_s
    stride = int(round(ratio))
    if stride >= 1 and abs(ratio - stride) < 1e-6:
        return table, stride
    return resample_table(table, dt_s), 1


def build_windows(table: TrackTable, config: PredictorConfig, sample_every_s: float = 1.0,
                  max_agents: int | None = None, seed: int = 0) -> WindowSet:
    """Cut windows every ``sample_every_s`` in every scene; see the module docstring.

    The focal agent of a window is the table's ``meta["ego_agent_id"]`` when present at that frame,
    else a seeded random agent; the ``max_agents`` agents nearest the focal one are kept.
    """
    table, stride = _on_grid(table, config.dt_s)
    max_agents = max_agents or config.max_agents
    every = max(1, int(round(sample_every_s / table.dt_s)))
    rng = np.random.default_rng(seed)
    ego = table.meta.get("ego_agent_id")
    parts = [_scene_windows(table, scene, config, stride, every, max_agents, rng, ego) for scene in table.scenes]
    found = [p for p in parts if p is not None]
    if not found:
        return _empty_windows(config)
    return WindowSet.concatenate(found)


def _empty_windows(config: PredictorConfig) -> WindowSet:
    h, t = config.history_steps, config.horizon_steps
    return WindowSet(np.zeros((0, h, 2), np.float32), np.zeros((0, h), bool), np.zeros((0, t, 2), np.float32),
                     np.zeros((0, t), bool), np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64),
                     np.zeros(0, np.int64), np.zeros((0, 2)), config.dt_s)


def _scene_windows(table: TrackTable, scene: int, config: PredictorConfig, stride: int, every: int,
                   max_agents: int, rng: np.random.Generator, ego: int | None) -> WindowSet | None:
    lo, hi = np.searchsorted(table["scene"], [scene, scene + 1])
    frame, agent = table["frame"][lo:hi], table["agent_id"][lo:hi]
    xy = np.stack((table["x_m"][lo:hi], table["y_m"][lo:hi]), 1)
    h, t = config.history_steps, config.horizon_steps
    first, last = frame[0] + (h - 1) * stride, frame[-1] - t * stride
    candidates = np.intersect1d(np.arange(first, last + 1, every), frame)
    if len(candidates) == 0:
        return None
    span = int(agent.max()) - int(agent.min()) + 1
    keys = (frame - frame[0]) * span + (agent - agent.min())  # sorted: rows are ordered by (frame, agent)
    starts = np.searchsorted(frame, candidates)
    stops = np.searchsorted(frame, candidates, side="right")
    chosen = [_choose_agents(xy[a:b], agent[a:b], max_agents, rng, ego) for a, b in zip(starts, stops, strict=True)]
    counts = np.array([len(c) for c in chosen])
    rows = np.concatenate([a + c for a, c in zip(starts, chosen, strict=True)])
    win_frame = np.repeat(candidates, counts)
    hist_offsets = -np.arange(h - 1, -1, -1) * stride
    fut_offsets = np.arange(1, t + 1) * stride
    hist_xy, hist_mask = _lookup(keys, xy, frame[0], span, agent.min(), win_frame, agent[rows], hist_offsets)
    fut_xy, fut_mask = _lookup(keys, xy, frame[0], span, agent.min(), win_frame, agent[rows], fut_offsets)
    origin = xy[np.concatenate([a + c[:1] for a, c in zip(starts, chosen, strict=True)])]
    rel_origin = np.repeat(origin, counts, axis=0)[:, None, :]
    hist_rel = np.where(hist_mask[..., None], hist_xy - rel_origin, 0.0).astype(np.float32)
    fut_rel = np.where(fut_mask[..., None], fut_xy - rel_origin, 0.0).astype(np.float32)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return WindowSet(hist_rel, hist_mask, fut_rel, fut_mask, agent[rows].astype(np.int64), offsets,
                     np.full(len(candidates), scene, np.int64), candidates.astype(np.int64), origin, config.dt_s)


def _choose_agents(xy: np.ndarray, ids: np.ndarray, max_agents: int, rng: np.random.Generator,
                   ego: int | None) -> np.ndarray:
    """Row indices (into one frame's rows) of the focal agent first, then the nearest others."""
    is_ego = np.flatnonzero(ids == ego) if ego is not None else np.zeros(0, np.int64)
    focal = int(is_ego[0]) if len(is_ego) else int(rng.integers(len(ids)))
    dist = np.hypot(*(xy - xy[focal]).T)
    dist[focal] = -1.0
    return np.argsort(dist, kind="stable")[:max_agents]


def _lookup(keys: np.ndarray, xy: np.ndarray, frame0: int, span: int, agent0: int, win_frame: np.ndarray,
            agent: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of (agent, frame + offset) for every selected agent and offset, with a found-mask."""
    q_frame = win_frame[:, None] + offsets[None, :]
    query = (q_frame - frame0) * span + (agent - agent0)[:, None]
    idx = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    found = (keys[idx] == query) & (q_frame >= frame0)
    return np.where(found[..., None], xy[idx], 0.0), found


def expand_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Track-table files from paths that may be files or directories of ``*.npz``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.npz")) if p.is_dir() else [p])
    if not out:
        raise ValueError(f"no track tables found in {paths}")
    return out


def scene_split(table: TrackTable, split: str, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                seed: int = 0) -> TrackTable:
    """The train/val/test part of one table (``split == "all"`` keeps everything); split by scene."""
    if split == "all":
        return table
    if split not in SCENE_SPLITS:
        raise ValueError(f"split must be one of {SCENE_SPLITS} or 'all', got {split!r}")
    parts = split_scenes(table.scenes, fractions, seed)
    return table.select_scenes(parts[SCENE_SPLITS.index(split)])


def load_windows(paths: str | Path | Iterable[str | Path], config: PredictorConfig, split: str = "all",
                 fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0,
                 sample_every_s: float = 1.0, max_agents: int | None = None) -> WindowSet:
    """Windows of one split from several track-table files (each file is split by its own scenes)."""
    sets = []
    for i, path in enumerate(expand_paths(paths)):
        table = scene_split(TrackTable.load(path), split, fractions, seed)
        if len(table):
            sets.append(build_windows(table, config, sample_every_s, max_agents, seed + i))
    sets = [s for s in sets if len(s)]
    return WindowSet.concatenate(sets) if sets else _empty_windows(config)
