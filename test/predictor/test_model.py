import math

import pytest
import torch

from rap_planner.core.predictor.model import AttentionLSTMPredictor, PredictorConfig


def _straight(b: int, n: int, h: int, speed_mps: float = 10.0, dt_s: float = 0.2) -> torch.Tensor:
    t = torch.arange(h, dtype=torch.float32) * dt_s
    xy = torch.stack((t * speed_mps, torch.zeros_like(t)), -1)
    offsets = torch.randn(b, n, 1, 2) * 20.0
    return xy.expand(b, n, h, 2) + offsets


@pytest.mark.parametrize("n", [1, 5])
def test_output_shapes(tiny_config, n):
    model = AttentionLSTMPredictor(tiny_config)
    h, t, k = tiny_config.history_steps, tiny_config.horizon_steps, tiny_config.num_modes
    logits, params = model(_straight(2, n, h), torch.ones(2, n, h, dtype=torch.bool))
    assert logits.shape == (2, n, k)
    assert params.shape == (2, n, k, t, 5)
    assert torch.isfinite(params).all() and torch.isfinite(logits).all()


def test_default_config_shapes():
    cfg = PredictorConfig()
    assert (cfg.history_steps, cfg.horizon_steps, cfg.num_modes) == (16, 25, 6)
    model = AttentionLSTMPredictor(cfg)
    _, params = model(_straight(1, 3, cfg.history_steps), torch.ones(1, 3, cfg.history_steps, dtype=torch.bool))
    assert params.shape == (1, 3, 6, 25, 5)


def test_sigma_floor_and_rho_bound(tiny_config):
    model = AttentionLSTMPredictor(tiny_config)
    with torch.no_grad():
        model.head.bias.fill_(-50.0)
    h = tiny_config.history_steps
    _, params = model(_straight(1, 2, h), torch.ones(1, 2, h, dtype=torch.bool))
    assert (params[..., 2:4] >= tiny_config.sigma_min_m * 0.999).all()
    assert (params[..., 4].abs() < 1.0).all()


def test_fully_masked_agents_and_scene_are_finite(tiny_config):
    model = AttentionLSTMPredictor(tiny_config)
    h = tiny_config.history_steps
    hist = _straight(2, 4, h)
    mask = torch.ones(2, 4, h, dtype=torch.bool)
    mask[0, 1] = False  # one absent agent
    mask[1] = False  # a scene with nobody in it
    hist[0, 1] = float("nan")  # garbage behind the mask must not leak
    logits, params = model(hist, mask)
    assert torch.isfinite(logits).all() and torch.isfinite(params).all()


def test_absent_agent_does_not_influence_others(tiny_config):
    model = AttentionLSTMPredictor(tiny_config).eval()
    h = tiny_config.history_steps
    hist = _straight(1, 3, h)
    mask = torch.ones(1, 3, h, dtype=torch.bool)
    mask[0, 2] = False
    _, p1 = model(hist, mask)
    hist2 = hist.clone()
    hist2[0, 2] = 1e4
    _, p2 = model(hist2, mask)
    assert torch.allclose(p1[0, :2], p2[0, :2], atol=1e-5)


@pytest.mark.parametrize("kind", ["zeros", "duplicates", "single_point"])
def test_degenerate_histories_give_finite_outputs_and_gradients(tiny_config, kind):
    model = AttentionLSTMPredictor(tiny_config)
    h = tiny_config.history_steps
    hist = torch.zeros(1, 3, h, 2)
    mask = torch.ones(1, 3, h, dtype=torch.bool)
    if kind == "duplicates":
        hist[:] = torch.tensor([5.0, -3.0])
    if kind == "single_point":
        mask[..., :-1] = False
    logits, params = model(hist, mask)
    (logits.sum() + params.sum()).backward()
    assert torch.isfinite(params).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_rigid_motion_equivariance(tiny_config):
    """Rotating and translating the scene rotates and translates the forecast (agent-centric frames)."""
    model = AttentionLSTMPredictor(tiny_config).eval()
    h = tiny_config.history_steps
    hist = _straight(1, 3, h) + torch.tensor([0.0, 1.0]) * torch.arange(3.0)[None, :, None, None]
    mask = torch.ones(1, 3, h, dtype=torch.bool)
    angle = 0.7
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shift = torch.tensor([30.0, -12.0])
    logits, params = model(hist, mask)
    logits2, params2 = model(hist @ rot.T + shift, mask)
    assert torch.allclose(logits, logits2, atol=1e-4)
    assert torch.allclose(params[..., :2] @ rot.T + shift, params2[..., :2], atol=1e-3)


def test_config_validation():
    with pytest.raises(ValueError):
        PredictorConfig(model_dim=30, num_heads=4)
    with pytest.raises(ValueError):
        PredictorConfig.from_dict({"num_modes": 6, "typo": 1})
    with pytest.raises(ValueError):
        PredictorConfig(encoder_hidden=10**9)
    assert PredictorConfig.from_dict(PredictorConfig().to_dict()) == PredictorConfig()


def test_stopped_agent_keeps_its_arrival_heading(tiny_config):
    model = AttentionLSTMPredictor(tiny_config)
    h = tiny_config.history_steps
    y = torch.clamp(torch.arange(h, dtype=torch.float32) * 2.0, max=4.0)  # drove north, then stopped
    hist = torch.stack((torch.zeros(h), y), -1)[None, None]
    frames = model.frames(hist, torch.ones(1, 1, h, dtype=torch.bool))
    assert torch.allclose(torch.stack((frames.cos, frames.sin)), torch.tensor([[[0.0]], [[1.0]]]), atol=1e-6)
    assert torch.allclose(frames.velocity_local_mps, torch.zeros(1, 1, 2))
