import math

import torch

from rap_planner.core.predictor.loss import gaussian_log_prob, mixture_nll, trajectory_log_likelihood


def _params(k: int, t: int, mu=(0.0, 0.0), sigma=(1.0, 2.0), rho=0.3) -> torch.Tensor:
    p = torch.tensor([*mu, *sigma, rho], dtype=torch.float64)
    return p.expand(1, k, t, 5).clone()


def test_gaussian_log_prob_matches_closed_form():
    p = torch.tensor([1.0, -2.0, 0.5, 2.0, -0.4], dtype=torch.float64)
    y = torch.tensor([1.3, -1.0], dtype=torch.float64)
    cov = torch.tensor([[0.25, -0.4 * 0.5 * 2.0], [-0.4 * 0.5 * 2.0, 4.0]], dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(p[:2], cov).log_prob(y)
    assert torch.allclose(gaussian_log_prob(p, y), ref)


def test_mixture_of_identical_modes_equals_single_gaussian():
    t = 4
    target = torch.tensor([[[0.5, 0.5]] * t], dtype=torch.float64)
    mask = torch.ones(1, t, dtype=torch.bool)
    single = mixture_nll(torch.zeros(1, 1, dtype=torch.float64), _params(1, t), target, mask)
    mixed = mixture_nll(torch.zeros(1, 3, dtype=torch.float64), _params(3, t), target, mask)
    step = -gaussian_log_prob(_params(1, 1)[0, 0, 0], target[0, 0])
    assert torch.allclose(single, mixed) and torch.allclose(single, step)


def test_missing_steps_are_ignored_even_when_nan():
    t = 5
    target = torch.zeros(1, t, 2, dtype=torch.float64)
    mask = torch.ones(1, t, dtype=torch.bool)
    ref = mixture_nll(torch.zeros(1, 2, dtype=torch.float64), _params(2, t), target, mask)
    target[0, 3:] = float("nan")
    mask[0, 3:] = False
    out = mixture_nll(torch.zeros(1, 2, dtype=torch.float64), _params(2, t), target, mask)
    assert torch.allclose(out, ref)  # per-step normalisation: same value with fewer steps


def test_degenerate_inputs_give_finite_loss_and_gradients():
    logits = torch.tensor([[50.0, -50.0]], requires_grad=True)
    params = torch.tensor([0.0, 0.0, 1e-3, 1e-3, 0.999]).expand(1, 2, 3, 5).clone().requires_grad_(True)
    target = torch.full((1, 3, 2), 1e3)
    loss = mixture_nll(logits, params, target, torch.ones(1, 3, dtype=torch.bool), wta_weight=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and torch.isfinite(params.grad).all()


def test_nothing_observed_gives_zero_with_gradient_path():
    logits = torch.zeros(2, 3, requires_grad=True)
    params = _params(3, 4).float().expand(2, 3, 4, 5).clone().requires_grad_(True)
    loss = mixture_nll(logits, params, torch.zeros(2, 4, 2), torch.zeros(2, 4, dtype=torch.bool), wta_weight=0.5)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(params.grad).all()


def test_winner_take_all_pulls_the_closest_mode():
    params = torch.zeros(1, 2, 1, 5)
    params[..., 2:4] = 1.0
    params[0, 1, 0, 0] = 5.0
    params.requires_grad_(True)
    target = torch.tensor([[[4.0, 0.0]]])
    mixture_nll(torch.zeros(1, 2), params, target, torch.ones(1, 1, dtype=torch.bool), wta_weight=10.0).backward()
    assert abs(float(params.grad[0, 1, 0, 0])) > abs(float(params.grad[0, 0, 0, 0]))


def test_trajectory_log_likelihood_uses_mode_weights():
    t = 2
    params = torch.cat((_params(1, t, mu=(0.0, 0.0)), _params(1, t, mu=(10.0, 0.0))), 1)
    target = torch.zeros(1, t, 2, dtype=torch.float64)
    mask = torch.ones(1, t, dtype=torch.bool)
    heavy = trajectory_log_likelihood(torch.tensor([[math.log(9.0), 0.0]], dtype=torch.float64), params, target, mask)
    light = trajectory_log_likelihood(torch.tensor([[0.0, math.log(9.0)]], dtype=torch.float64), params, target, mask)
    assert float(heavy) > float(light)
