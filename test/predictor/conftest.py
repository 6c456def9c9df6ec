"""Shared fixtures: tiny model configs and synthetic track tables (no large data in the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from predictor_synth import make_highway_table

from rap_planner.core.predictor.model import PredictorConfig
from rap_planner.data.tracks import TrackTable


@pytest.fixture
def tiny_config() -> PredictorConfig:
    return PredictorConfig(history_s=1.0, horizon_s=2.0, dt_s=0.2, num_modes=3, encoder_hidden=16, model_dim=16,
                           num_heads=2, decoder_hidden=16, decoder_steps_per_cell=2, max_agents=8)


@pytest.fixture(scope="session")
def highway_table() -> TrackTable:
    return make_highway_table(num_scenes=8, duration_s=12.0, dt_s=0.1, agents=6, seed=3)


@pytest.fixture(scope="session")
def highway_path(tmp_path_factory, highway_table) -> Path:
    return highway_table.save(tmp_path_factory.mktemp("tracks") / "highway.npz")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """One intra-op thread: tiny tensors gain nothing from more, and a busy CI machine makes them spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
