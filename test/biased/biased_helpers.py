"""Small scenes and configs shared by the biased-sampler tests (plain functions; no conftest, so file
names never collide with other test directories)."""

from __future__ import annotations

import numpy as np
import torch

from rap_planner.core.biased import BiasedSampler, BiasedSamplerConfig
from rap_planner.core.biased.problems import RiskProblem
from rap_planner.core.scenes import didactic_scene, highway_scene
from rap_planner.core.types import AgentForecast, ForecastSet


def didactic_problem(**kwargs) -> RiskProblem:
    return RiskProblem.from_scene(didactic_scene(**kwargs))


def small_highway_problem(num_agents: int = 4, seed: int = 1) -> RiskProblem:
    return RiskProblem.from_scene(highway_scene(num_agents=num_agents, seed=seed, lanes=2, ego_lane=0))


def random_sampler(seed: int = 0, std: float = 0.5, **config) -> BiasedSampler:
    """An untrained encoder with a random head: strongly biased, so consistency tests have teeth."""
    torch.manual_seed(seed)
    sampler = BiasedSampler(BiasedSamplerConfig(**config))
    for parameter in sampler.head.parameters():
        torch.nn.init.normal_(parameter, std=std)
    return sampler.eval()


def mixed_modes_forecasts() -> ForecastSet:
    """Two agents with 1 and 3 modes (padding), anisotropic covariances with correlation."""
    steps, dt = 10, 0.2
    t = dt * np.arange(1, steps + 1)
    cov = np.zeros((steps, 2, 2))
    cov[:, 0, 0], cov[:, 1, 1], cov[:, 0, 1], cov[:, 1, 0] = 0.2 + t, 0.1 + 0.5 * t, 0.05 * t, 0.05 * t
    one = AgentForecast(7, np.array([1.0]), np.stack([np.stack([20 - 3 * t, 0.5 * t], 1)]), cov[None])
    means = np.stack([np.stack([5 + 6 * t, 3.5 + 0 * t], 1), np.stack([5 + 6 * t, 3.5 - t], 1),
                      np.stack([5 + 4 * t, 3.5 + 0 * t], 1)])
    three = AgentForecast(9, np.array([0.6, 0.3, 0.1]), means, np.repeat(cov[None], 3, axis=0))
    return ForecastSet(stamp_s=0.0, dt_s=dt, num_steps=steps, agents=[one, three])


def straight_plan(forecasts: ForecastSet, speed_mps: float = 8.0) -> np.ndarray:
    t = forecasts.dt_s * np.arange(1, forecasts.num_steps + 1)
    return np.stack([speed_mps * t, np.zeros_like(t)], axis=1)


def tiny_train_config(output_dir, **changes) -> dict:
    config = {
        "output_dir": str(output_dir), "sampler": {"hidden_units": 16, "hidden_layers": 1},
        "didactic_scenes": 10, "highway_scenes": 2, "max_agents": 4, "val_fraction": 0.2, "plans_per_scene": 3,
        "pool_samples": 128, "fresh_samples": 8, "epochs": 3, "batch_size": 8, "lr": 0.01, "val_draws": 1,
        "num_threads": 1, "seed": 3,
    }
    config.update(changes)
    return config
