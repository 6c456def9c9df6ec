"""NGSIM US-101 / I-80 vehicle trajectories -> ``TrackTable``.

Source columns (feet, ft/s, 10 Hz): Vehicle_ID, Frame_ID, Total_Frames, Global_Time, Local_X, Local_Y,
Global_X, Global_Y, v_Length, v_Width, v_Class, v_Vel, v_Acc, Lane_ID, Preceding, Following,
Space_Headway, Time_Headway. Local_Y runs along the road (direction of travel), Local_X across it,
increasing to the right (towards higher Lane_ID). Both are the vehicle's FRONT centre.

Output frame (REP 103): x_m = Local_Y (forward), y_m = -Local_X (left), in metres; positions are
moved from the front bumper to the footprint centre along the heading. Accepts the comma-separated
export with a header (extra columns such as Location are ignored) and the original whitespace-
separated text files without a header; header names are matched case-insensitively.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rap_planner.data.tracks import TrackTable

FEET_TO_M = 0.3048
DT_S = 0.1
COLUMNS = ("Vehicle_ID", "Frame_ID", "Total_Frames", "Global_Time", "Local_X", "Local_Y", "Global_X", "Global_Y",
           "v_Length", "v_Width", "v_Class", "v_Vel", "v_Acc", "Lane_ID", "Preceding", "Following",
           "Space_Headway", "Time_Headway")
NEEDED = ("Vehicle_ID", "Frame_ID", "Local_X", "Local_Y", "v_Length", "v_Width", "v_Vel")
HEADING_HALF_WINDOW = 5  # frames
HEADING_MIN_MOTION_M = 0.5


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    """The numeric columns in NEEDED, from a headed CSV or a header-less whitespace file."""
    with path.open() as f:
        first = f.readline()
    delimiter = "," if "," in first else None
    has_header = "Vehicle_ID" in first
    if has_header:  # matched case-insensitively: the data.gov export spells it "v_length"
        names = [n.strip().strip('"').lower() for n in first.strip().split(delimiter)]
        missing = [n for n in NEEDED if n.lower() not in names]
        if missing:
            raise ValueError(f"{path}: NGSIM file lacks columns {missing}")
        use = [names.index(n.lower()) for n in NEEDED]
    else:
        use = [COLUMNS.index(n) for n in NEEDED]
    data = np.loadtxt(path, delimiter=delimiter, skiprows=int(has_header), usecols=use, ndmin=2, dtype=np.float64)
    return {n: data[:, i] for i, n in enumerate(NEEDED)}


def _headings(vid: np.ndarray, x_m: np.ndarray, y_m: np.ndarray) -> np.ndarray:
    """Per-row heading from each track's motion over about a second (rows sorted by vehicle, frame).

    A ±0.5 s baseline keeps NGSIM's position noise out of the heading; a vehicle that has not moved
    keeps its neighbouring heading (+x when it never moves).
    """
    yaw = np.zeros(len(vid))
    starts = np.flatnonzero(np.r_[True, vid[1:] != vid[:-1]])
    for lo, hi in zip(starts, np.r_[starts[1:], len(vid)], strict=True):
        i = np.arange(hi - lo)
        a, b = np.clip(i - HEADING_HALF_WINDOW, 0, hi - lo - 1), np.clip(i + HEADING_HALF_WINDOW, 0, hi - lo - 1)
        dx, dy = x_m[lo:hi][b] - x_m[lo:hi][a], y_m[lo:hi][b] - y_m[lo:hi][a]
        raw = np.where(np.hypot(dx, dy) > HEADING_MIN_MOTION_M, np.arctan2(dy, dx), np.nan)
        yaw[lo:hi] = _fill_forward(raw)
    return yaw


def _fill_forward(values: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward (and the first one backward); 0 when none is finite."""
    ok = np.isfinite(values)
    if not ok.any():
        return np.zeros_like(values)
    idx = np.where(ok, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = values[idx]
    filled[: np.argmax(ok)] = values[np.argmax(ok)]
    return filled


def load_ngsim(path: str | Path, scene: int = 0, segment_s: float | None = None) -> TrackTable:
    """Read one NGSIM trajectory file into a ``TrackTable`` (metres, SI, footprint centres).

    ``segment_s`` cuts the recording into consecutive scenes of that length (ids ``scene``,
    ``scene + 1``, ...) so a single 15-minute file can still be split into train/val/test by scene.
    Duplicate (vehicle, frame) rows, present in the public files, are dropped.
    """
    path = Path(path)
    raw = _read_columns(path)
    vid, frame = raw["Vehicle_ID"].astype(np.int64), raw["Frame_ID"].astype(np.int64)
    order = np.lexsort((frame, vid))
    keep = order[np.r_[True, (vid[order][1:] != vid[order][:-1]) | (frame[order][1:] != frame[order][:-1])]]
    vid, frame = vid[keep], frame[keep]
    x_front = raw["Local_Y"][keep] * FEET_TO_M
    y_front = -raw["Local_X"][keep] * FEET_TO_M
    length = raw["v_Length"][keep] * FEET_TO_M
    yaw = _headings(vid, x_front, y_front)
    scenes = np.full(len(vid), scene, np.int64)
    if segment_s is not None:
        per = max(1, int(round(segment_s / DT_S)))
        scenes = scene + (frame - frame.min()) // per
    cols = {"scene": scenes, "frame": frame, "agent_id": vid,
            "x_m": x_front - 0.5 * length * np.cos(yaw), "y_m": y_front - 0.5 * length * np.sin(yaw),
            "yaw_rad": yaw, "v_mps": raw["v_Vel"][keep] * FEET_TO_M, "length_m": length,
            "width_m": raw["v_Width"][keep] * FEET_TO_M}
    return TrackTable(cols, DT_S, {"source": "ngsim", "file": path.name})
