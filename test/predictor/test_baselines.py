import torch

from rap_planner.core.predictor.baselines import KinematicConfig, constant_acceleration, constant_velocity


def _track(h: int, dt_s: float, v=(12.0, -5.0), a=(0.0, 0.0), start=(3.0, 4.0)) -> torch.Tensor:
    t = torch.arange(h, dtype=torch.float64) * dt_s
    v, a, start = (torch.tensor(x, dtype=torch.float64) for x in (v, a, start))
    return (start + t[:, None] * v + 0.5 * t[:, None] ** 2 * a)[None, None]


def test_constant_velocity_is_exact_on_a_straight_constant_speed_track():
    cfg = KinematicConfig(dt_s=0.2, horizon_steps=25)
    hist = _track(16, 0.2)
    logits, params = constant_velocity(hist, torch.ones(1, 1, 16, dtype=torch.bool), cfg)
    future = _track(16 + 25, 0.2)[:, :, 16:]
    assert logits.shape == (1, 1, 1) and params.shape == (1, 1, 1, 25, 5)
    assert torch.allclose(params[0, 0, 0, :, :2], future[0, 0], atol=1e-9)


def test_covariance_grows_and_is_oriented_along_travel():
    cfg = KinematicConfig(dt_s=0.2, horizon_steps=10)
    _, params = constant_velocity(_track(8, 0.2, v=(10.0, 10.0)), torch.ones(1, 1, 8, dtype=torch.bool), cfg)
    sx = params[0, 0, 0, :, 2]
    assert (sx[1:] > sx[:-1]).all()
    assert (params[0, 0, 0, :, 4] > 0.1).all()  # diagonal travel: positively correlated x/y


def test_constant_acceleration_is_exact_on_a_constant_acceleration_track():
    cfg = KinematicConfig(dt_s=0.1, horizon_steps=20, velocity_window_steps=3)
    hist = _track(12, 0.1, v=(8.0, 1.0), a=(2.0, -0.5))
    _, params = constant_acceleration(hist, torch.ones(1, 1, 12, dtype=torch.bool), cfg)
    future = _track(12 + 20, 0.1, v=(8.0, 1.0), a=(2.0, -0.5))[:, :, 12:]
    assert torch.allclose(params[0, 0, 0, :, :2], future[0, 0], atol=1e-6)


def test_gaps_and_degenerate_histories():
    cfg = KinematicConfig(dt_s=0.2, horizon_steps=5)
    hist = torch.cat((_track(6, 0.2), torch.zeros(1, 1, 6, 2), torch.full((1, 1, 6, 2), 7.0)), 1)
    mask = torch.ones(1, 3, 6, dtype=torch.bool)
    mask[0, 0, 3] = False  # a gap inside the velocity window still yields the right velocity
    mask[0, 1] = False
    for fn in (constant_velocity, constant_acceleration):
        _, params = fn(hist, mask, cfg)
        assert torch.isfinite(params).all()
    _, params = constant_velocity(hist, mask, cfg)
    assert torch.allclose(params[0, 0, 0, :, :2], _track(11, 0.2)[0, 0, 6:], atol=1e-9)
    assert torch.allclose(params[0, 2, 0, :, :2], torch.full((5, 2), 7.0, dtype=torch.float64))
