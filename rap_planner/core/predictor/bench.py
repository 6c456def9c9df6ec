"""Per-cycle latency of the prediction stage as the node runs it (``PredictionPipeline.step``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rap_planner.core.pipeline import PredictionPipeline, PredictionSettings
from rap_planner.core.predictor.model import AttentionLSTMPredictor, PredictorConfig
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.types import TrackedAgent


def _scene(agents: int, steps: int, dt_s: float, seed: int) -> dict[int, np.ndarray]:
    """Agents driving in random directions at highway speeds, a few metres apart."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-60.0, 60.0, (agents, 2))
    heading = rng.uniform(-np.pi, np.pi, agents)
    vel = rng.uniform(5.0, 30.0, agents)[:, None] * np.stack((np.cos(heading), np.sin(heading)), 1)
    t_s = (np.arange(steps) - (steps - 1)) * dt_s
    return {i: start[i] + t_s[:, None] * vel[i] for i in range(agents)}


def _filled_pipeline(model: ForecastModel, histories: dict[int, np.ndarray]) -> PredictionPipeline:
    """The node's prediction stage holding the scene's histories as tracker messages on the model's grid."""
    pipeline = PredictionPipeline(model, PredictionSettings(max_agents=max(len(histories), 1)))
    dt_s = model.config.dt_s
    steps = next(iter(histories.values())).shape[0] if histories else 0
    for h in range(steps):
        stamp_s = (h - (steps - 1)) * dt_s
        pipeline.add_tracks([TrackedAgent(agent_id=i, stamp_s=stamp_s, x_m=float(xy[h, 0]), y_m=float(xy[h, 1]),
                                          yaw_rad=0.0, vx_mps=0.0, vy_mps=0.0) for i, xy in histories.items()],
                            stamp_s)
    return pipeline


def _timings_ms(fn: Callable[[], object], repeats: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and calling-thread CPU milliseconds per call (CPU time shows the intrinsic cost on a busy host)."""
    for _ in range(warmup):
        fn()
    wall, cpu = np.empty(repeats), np.empty(repeats)
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        wall[r], cpu[r] = (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3
    return wall, cpu


def run_predictor_bench(agents: int = 32, modes: int = 6, horizon_s: float = 5.0, repeats: int = 200,
                        num_threads: int = 1, checkpoint: str | Path | None = None, warmup: int = 20,
                        seed: int = 0) -> dict[str, Any]:
    """p50/p95 wall-clock milliseconds per scene for the learned model and, in the same run, constant velocity.

    Uses the given checkpoint, else a randomly initialised model of the default size (latency does
    not depend on the weights). Threads are set for the run and restored afterwards. One intra-op
    thread is the default: on 2 cores shared with the planner, a second OpenMP thread buys little on
    these small tensors and makes the tail latency much worse whenever the other core is busy.
    """
    if checkpoint is not None:
        predictor = ForecastModel.load(checkpoint)
    else:
        torch.manual_seed(seed)
        config = replace(PredictorConfig(), num_modes=modes, horizon_s=horizon_s, max_agents=max(agents, 1))
        predictor = ForecastModel(AttentionLSTMPredictor(config), config, "random-init")
    fallback = ForecastModel.constant_velocity(predictor.config)
    histories = _scene(agents, predictor.config.history_steps, predictor.config.dt_s, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        learned, kinematic = (_filled_pipeline(m, histories) for m in (predictor, fallback))
        model_ms, model_cpu_ms = _timings_ms(learned.step, repeats, warmup)
        cv_ms, _ = _timings_ms(kinematic.step, repeats, warmup)
    finally:
        torch.set_num_threads(threads)
    return {"agents": agents, "modes": predictor.config.num_modes, "horizon_s": predictor.config.horizon_s,
            "repeats": repeats, "num_threads": num_threads, "p50_ms": float(np.percentile(model_ms, 50)),
            "p95_ms": float(np.percentile(model_ms, 95)), "mean_ms": float(model_ms.mean()),
            "cpu_p50_ms": float(np.percentile(model_cpu_ms, 50)), "cv_p50_ms": float(np.percentile(cv_ms, 50)),
            "cv_p95_ms": float(np.percentile(cv_ms, 95))}


if __name__ == "__main__":
    print(run_predictor_bench())
