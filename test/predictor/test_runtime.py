from dataclasses import replace

import numpy as np
import pytest

from rap_planner.core.predictor import runtime
from rap_planner.core.predictor.checkpoint import CheckpointError, save_checkpoint
from rap_planner.core.predictor.model import AttentionLSTMPredictor
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.types import ForecastSet


def _histories(n: int, steps: int, dt_s: float = 0.2) -> dict[int, np.ndarray]:
    t = (np.arange(steps) - (steps - 1)) * dt_s
    return {10 + i: np.stack((1e5 + 20.0 * t + 5.0 * i, 4e6 + 3.5 * i + 0 * t), 1) for i in range(n)}


def _check(forecasts, k: int, t: int) -> None:
    for f in forecasts:
        assert f.weights.shape == (k,) and np.isclose(f.weights.sum(), 1.0)
        assert f.means_m.shape == (k, t, 2) and f.covariances_m2.shape == (k, t, 2, 2)
        assert np.isfinite(f.means_m).all()
        eig = np.linalg.eigvalsh(f.covariances_m2)
        assert (eig > 0).all()


def test_default_without_weights_is_constant_velocity(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    model = ForecastModel.default()
    assert not model.is_learned
    out = model.predict(_histories(3, 16))
    _check(out, 1, model.num_steps)
    # constant velocity in large world coordinates stays exact (float64 offsets)
    np.testing.assert_allclose(out[0].means_m[0, 0], [1e5 + 20.0 * 0.2, 4e6], atol=1e-6)


def test_default_loads_shipped_weights(monkeypatch, tmp_path, tiny_config):
    path = save_checkpoint(AttentionLSTMPredictor(tiny_config), tmp_path / "predictor_default.safetensors")
    monkeypatch.setattr(runtime, "DEFAULT_WEIGHTS", path)
    model = ForecastModel.default()
    assert model.is_learned and model.config == tiny_config
    path.write_bytes(b"corrupt")
    with pytest.raises(CheckpointError):
        ForecastModel.default()


def test_learned_predict_world_frame_and_sizes(tmp_path, tiny_config):
    model = ForecastModel.load(save_checkpoint(AttentionLSTMPredictor(tiny_config), tmp_path / "m.safetensors"))
    hist = _histories(4, 3)  # shorter than the model's history: padded and masked
    hist[11][0] = np.nan  # a missing point
    out = model.predict(hist, sizes_m={10: (12.0, 2.5)})
    _check(out, tiny_config.num_modes, tiny_config.horizon_steps)
    assert [f.agent_id for f in out] == [10, 11, 12, 13]
    assert (out[0].length_m, out[0].width_m) == (12.0, 2.5)
    assert np.abs(out[0].means_m[:, 0] - hist[10][-1]).max() < 50.0  # near the agent, i.e. in the world frame


def test_agents_beyond_the_cap_fall_back_to_constant_velocity(tiny_config):
    cfg = replace(tiny_config, max_agents=3)
    model = ForecastModel(AttentionLSTMPredictor(cfg), cfg, "test")
    out = model.predict(_histories(6, cfg.history_steps), centre_m=np.array([1e5, 4e6]))
    assert [len(f.weights) for f in out] == [3, 3, 3, 1, 1, 1]
    wider = ForecastModel(AttentionLSTMPredictor(cfg), cfg, "test", max_agents=6)
    assert [len(f.weights) for f in wider.predict(_histories(6, cfg.history_steps))] == [3] * 6


def test_history_regridding_and_forecast_set(tiny_config):
    model = ForecastModel.constant_velocity(tiny_config)
    fine = _histories(2, 11, dt_s=0.1)
    coarse = _histories(2, 6, dt_s=0.2)
    a = model.predict(fine, history_dt_s=0.1)
    b = model.predict(coarse)
    np.testing.assert_allclose(a[0].means_m, b[0].means_m, atol=1e-9)
    fs = model.predict_set(coarse, stamp_s=12.5)
    assert isinstance(fs, ForecastSet) and fs.num_steps == tiny_config.horizon_steps and fs.dt_s == 0.2
    assert model.predict({}) == []
    out = model.predict({1: np.full((4, 2), np.nan), 2: coarse[10]})
    assert [f.agent_id for f in out] == [2]  # nothing to extrapolate for agent 1
