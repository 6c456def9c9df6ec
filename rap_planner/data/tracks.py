"""The one on-disk format for recorded trajectories: a flat track table in an ``.npz``.

Every source (SUMO recordings, NGSIM, highD, bags) converts into this table, and the predictor's
window builder reads only this table. Stored without pickle (``allow_pickle=False``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COLUMNS: dict[str, type] = {
    "scene": np.int64,  # recording / scenario-seed id; splits are made by scene, never by row
    "frame": np.int64,  # frame index inside the scene (constant dt_s apart)
    "agent_id": np.int64,  # track id, unique inside a scene
    "x_m": np.float64,  # footprint centre, world frame (REP 103: x east/forward, y north/left)
    "y_m": np.float64,
    "yaw_rad": np.float64,  # heading, counter-clockwise from +x
    "v_mps": np.float64,  # speed along the heading
    "length_m": np.float64,
    "width_m": np.float64,
}


@dataclass
class TrackTable:
    """Columns of equal length; rows sorted by (scene, frame, agent_id)."""

    columns: dict[str, np.ndarray]
    dt_s: float
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(COLUMNS) - set(self.columns)
        if missing:
            raise ValueError(f"track table lacks columns {sorted(missing)}")
        lengths = {len(self.columns[c]) for c in COLUMNS}
        if len(lengths) > 1:
            raise ValueError(f"track table columns have different lengths {sorted(lengths)}")
        self.columns = {c: np.asarray(self.columns[c], dtype=t) for c, t in COLUMNS.items()}
        order = np.lexsort((self.columns["agent_id"], self.columns["frame"], self.columns["scene"]))
        self.columns = {c: v[order] for c, v in self.columns.items()}

    def __len__(self) -> int:
        return len(self.columns["scene"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def scenes(self) -> np.ndarray:
        return np.unique(self.columns["scene"])

    def select_scenes(self, scenes: np.ndarray) -> TrackTable:
        keep = np.isin(self.columns["scene"], scenes)
        return TrackTable({c: v[keep] for c, v in self.columns.items()}, self.dt_s, dict(self.meta))

    @staticmethod
    def concatenate(tables: list[TrackTable]) -> TrackTable:
        if not tables:
            raise ValueError("nothing to concatenate")
        dts = {round(t.dt_s, 9) for t in tables}
        if len(dts) > 1:
            raise ValueError(f"tables have different dt_s {sorted(dts)}")
        cols = {c: np.concatenate([t.columns[c] for t in tables]) for c in COLUMNS}
        return TrackTable(cols, tables[0].dt_s, dict(tables[0].meta))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"dt_s": self.dt_s, "meta": self.meta})
        np.savez_compressed(path, __header__=np.frombuffer(header.encode(), dtype=np.uint8), **self.columns)
        return path

    @staticmethod
    def load(path: str | Path) -> TrackTable:
        with np.load(Path(path), allow_pickle=False) as data:
            header = json.loads(bytes(data["__header__"]).decode())
            cols = {c: data[c] for c in COLUMNS}
        return TrackTable(cols, float(header["dt_s"]), header.get("meta", {}))


def split_scenes(scenes: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation/test scene ids, shuffled by ``seed``; never splits a scene."""
    scenes = np.random.default_rng(seed).permutation(np.unique(scenes))
    n_train = int(round(fractions[0] * len(scenes)))
    n_val = int(round(fractions[1] * len(scenes)))
    return scenes[:n_train], scenes[n_train:n_train + n_val], scenes[n_train + n_val:]
