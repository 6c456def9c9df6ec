import math

import numpy as np
import pytest
import torch

from rap_planner.core.predictor import metrics
from rap_planner.core.predictor.evaluate import evaluate
from rap_planner.core.predictor.model import AttentionLSTMPredictor


def _hand_case():
    """Two agents, K = 2 modes, T = 2 steps (dt 0.5 s), unit isotropic covariances."""
    means = torch.tensor([[[[1.0, 0.0], [2.0, 0.0]], [[1.0, 1.0], [2.0, 2.0]]],
                          [[[3.0, 4.0], [6.0, 8.0]], [[0.0, 1.0], [0.0, 3.0]]]], dtype=torch.float64)
    params = torch.cat((means, torch.ones(2, 2, 2, 2, dtype=torch.float64), torch.zeros(2, 2, 2, 1,
                                                                                         dtype=torch.float64)), -1)
    target = torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, -30.0]], dtype=torch.float64)
    return logits, params, target


def test_hand_computed_metrics():
    logits, params, target = _hand_case()
    out = metrics.compute_metrics(logits, params, target, dt_s=0.5, samples=64)
    # agent A: mode 0 exact; agent B: mode 1 errors (1, 3) beat mode 0 errors (5, 10)
    assert out["minADE"] == pytest.approx((0.0 + 2.0) / 2)
    assert out["minFDE"] == pytest.approx((0.0 + 3.0) / 2)
    assert out["miss_rate"] == pytest.approx(0.5)
    # most likely modes: A -> mode 1 (final error 2), B -> mode 0 (final error 10)
    assert out["rmse_per_s"] == pytest.approx([math.sqrt((4.0 + 100.0) / 2)])
    log2pi = math.log(2 * math.pi)
    ll_a = math.log(0.25 * math.exp(-2 * log2pi) + 0.75 * math.exp(-2 * log2pi - 0.5 * (1 + 4)))
    pi_b = torch.softmax(logits[1], 0).tolist()
    ll_b = math.log(pi_b[0] * math.exp(-2 * log2pi - 0.5 * (25 + 100)) + pi_b[1] * math.exp(-2 * log2pi - 0.5 * 10))
    assert out["nll"] == pytest.approx(-(ll_a + ll_b) / 2 / 2)


def test_coverage_of_a_calibrated_forecast_matches_its_level():
    gen = torch.Generator().manual_seed(0)
    s = 3000
    params = torch.zeros(s, 1, 1, 5, dtype=torch.float64)
    params[..., 2], params[..., 3], params[..., 4] = 2.0, 0.5, 0.6
    truth = metrics.sample_mixture(torch.zeros(s, 1), params, 1, gen)[:, 0]
    levels = metrics.hdr_levels(torch.zeros(s, 1), params, truth, samples=400)
    for level in (0.5, 0.9, 0.95):
        assert float((levels <= level).double().mean()) == pytest.approx(level, abs=0.03)
    # an over-confident forecast under-covers
    tight = params.clone()
    tight[..., 2:4] /= 3.0
    assert float((metrics.hdr_levels(torch.zeros(s, 1), tight, truth, 200) <= 0.9).double().mean()) < 0.6


def test_evaluate_writes_report_and_returns_headline_numbers(tmp_path, highway_path, tiny_config):
    out = evaluate(AttentionLSTMPredictor(tiny_config), [highway_path], tmp_path / "eval", split="all", samples=32,
                   scene_plots=2)
    for key in ("minADE", "minFDE", "cv_minFDE", "nll", "coverage_90", "miss_rate", "rmse_per_s", "ca_minFDE"):
        assert key in out
    assert len(out["rmse_per_s"]) == 2 and np.isfinite(out["nll"])
    for name in ("metrics.md", "metrics.json", "error_vs_horizon.png", "scenes.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    assert "| cv |" in (tmp_path / "eval" / "metrics.md").read_text()
