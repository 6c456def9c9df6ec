"""Records SUMO episodes into the project's one trajectory format, a ``TrackTable``.

Every vehicle is recorded every step, the (SUMO-driven) ego included as agent 0. Each
(scenario, seed) is one scene: ``scene = scenario_index * SCENE_STRIDE + seed`` where
``scenario_index`` is the scenario's position in ``SCENARIOS``, so ids stay stable across calls.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rap_planner.data.tracks import TrackTable
from rap_planner.sim.scenarios import SCENARIOS
from rap_planner.sim.world import SumoWorld

SCENE_STRIDE = 100_000


def scene_id(scenario: str, seed: int) -> int:
    """The scene id of one (scenario, seed) episode."""
    if not 0 <= seed < SCENE_STRIDE:
        raise ValueError(f"seed must be in [0, {SCENE_STRIDE}), got {seed}")
    return list(SCENARIOS).index(scenario) * SCENE_STRIDE + seed


def record_episode(scenario: str, seed: int, duration_s: float, step_s: float = 0.1) -> dict[str, np.ndarray]:
    """Columns of one scene: all vehicles at every step from ``reset()`` (frame 0) to ``duration_s``."""
    num_steps = int(round(duration_s / step_s))
    chunks = []
    with SumoWorld(scenario, seed, step_s=step_s, ego_controlled=False, horizon_s=duration_s) as world:
        for frame in range(num_steps + 1):
            if frame:
                world.step()
            arrays = world.vehicle_arrays()
            chunks.append((np.full(len(arrays.agent_id), frame), arrays))
    frames = np.concatenate([c[0] for c in chunks])
    cols = {"scene": np.full(len(frames), scene_id(scenario, seed), dtype=np.int64), "frame": frames}
    for name in ("agent_id", "x_m", "y_m", "yaw_rad", "v_mps", "length_m", "width_m"):
        cols[name] = np.concatenate([getattr(c[1], name) for c in chunks])
    return cols


def _record_task(task: tuple[str, int, float, float]) -> dict[str, np.ndarray]:
    return record_episode(*task)


def generate_dataset(scenarios: list[str], seeds: Iterable[int], duration_s: float, out_path: str | Path | None,
                     step_s: float = 0.1, workers: int = 1) -> TrackTable:
    """Records every (scenario, seed) for ``duration_s`` and saves the table as ``.npz`` (unless ``out_path`` is None).

    Densities, driver noise and scripted cut-ins all vary with the seed. ``workers`` > 1 runs
    episodes in separate processes (libsumo runs one simulation per process).
    """
    for name in scenarios:
        if name not in SCENARIOS:
            raise KeyError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}")
    tasks = [(name, int(seed), float(duration_s), float(step_s)) for name in scenarios for seed in seeds]
    bar = tqdm(total=len(tasks), unit="scene", desc="sumo")
    parts = []
    start = time.perf_counter()

    def done(cols: dict[str, np.ndarray]) -> None:
        parts.append(cols)
        steps = sum(len(np.unique(p["frame"])) for p in parts)
        bar.set_postfix(steps_per_s=f"{steps / (time.perf_counter() - start):.0f}", refresh=False)
        bar.update()

    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for cols in pool.map(_record_task, tasks):
                done(cols)
    else:
        for task in tasks:
            done(_record_task(task))
    bar.close()
    columns = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    meta = {"source": "sumo", "scenarios": {str(list(SCENARIOS).index(n)): n for n in scenarios},
            "scene_stride": SCENE_STRIDE, "duration_s": float(duration_s), "ego_agent_id": 0}
    table = TrackTable(columns, float(step_s), meta)
    if out_path is not None:
        table.save(out_path)
    return table
