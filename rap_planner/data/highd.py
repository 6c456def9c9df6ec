"""highD recordings (``XX_tracks.csv`` + ``XX_recordingMeta.csv``) -> ``TrackTable``.

highD positions are image-aligned metres: x to the right, y DOWN, and (x, y) is the upper-left
corner of the bounding box, whose ``width`` is its extent along x (vehicle length) and ``height``
its extent along y (vehicle width). Output (REP 103, y up/left): x_m = x + width/2,
y_m = -(y + height/2), velocities mirrored the same way; heading from the velocity vector.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from rap_planner.data.tracks import TrackTable

NEEDED = ("frame", "id", "x", "y", "width", "height", "xVelocity", "yVelocity")
DEFAULT_FRAME_RATE_HZ = 25.0


def _read_csv(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        header = [h.strip() for h in next(csv.reader(f))]
    missing = [n for n in names if n not in header]
    if missing:
        raise ValueError(f"{path}: highD file lacks columns {missing}")
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[header.index(n) for n in names], ndmin=2,
                      dtype=np.float64)
    return {n: data[:, i] for i, n in enumerate(names)}


def _recording_meta(tracks_path: Path) -> tuple[float, int | None]:
    """Frame rate and recording id from the sibling ``XX_recordingMeta.csv`` (if there is one)."""
    match = re.match(r"(\d+)_tracks\.csv$", tracks_path.name)
    rec_id = int(match.group(1)) if match else None
    meta_path = tracks_path.with_name(f"{match.group(1)}_recordingMeta.csv") if match else None
    if meta_path is None or not meta_path.is_file():
        return DEFAULT_FRAME_RATE_HZ, rec_id
    with meta_path.open(newline="") as f:
        row = next(csv.DictReader(f))
    row = {k.strip(): v for k, v in row.items()}
    rate = float(row.get("frameRate", DEFAULT_FRAME_RATE_HZ))
    if not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"{meta_path}: invalid frameRate {rate}")
    return rate, int(float(row["id"])) if "id" in row else rec_id


def load_highd(tracks_path: str | Path, scene: int | None = None) -> TrackTable:
    """Read one highD recording; ``scene`` defaults to the recording id (the file's ``XX``)."""
    tracks_path = Path(tracks_path)
    rate_hz, rec_id = _recording_meta(tracks_path)
    raw = _read_csv(tracks_path, NEEDED)
    vx, vy = raw["xVelocity"], -raw["yVelocity"]
    scene_id = scene if scene is not None else (rec_id if rec_id is not None else 0)
    cols = {"scene": np.full(len(vx), scene_id, np.int64), "frame": raw["frame"].astype(np.int64),
            "agent_id": raw["id"].astype(np.int64), "x_m": raw["x"] + 0.5 * raw["width"],
            "y_m": -(raw["y"] + 0.5 * raw["height"]), "yaw_rad": np.arctan2(vy, vx), "v_mps": np.hypot(vx, vy),
            "length_m": raw["width"], "width_m": raw["height"]}
    return TrackTable(cols, 1.0 / rate_hz, {"source": "highd", "file": tracks_path.name})
