"""A short soak of the stack in its own process: it must not crash and must answer most inputs."""

from __future__ import annotations

from rap_planner.bench.soak import run_soak

KEYS = {"p50_ms", "p95_ms", "p99_ms", "sent", "plans", "dropped", "rss_start_mb", "rss_end_mb", "rss_growth_mb",
        "agents", "rate_hz", "minutes"}


def test_short_soak_answers_most_inputs(ros_domain):
    # a budget no refinement fits: every plan is the best sampled candidate, and the soak counts them
    result = run_soak(agents=20, rate_hz=10.0, minutes=0.25, progress=False, warmup_s=3.0, cycle_budget_s=1e-6)
    assert set(result) >= KEYS
    assert result["sent"] >= 0.8 * 15 * 10, result  # the source kept (roughly) its rate
    assert result["plans"] >= 0.8 * result["sent"], f"{result['dropped']} of {result['sent']} inputs got no plan"
    assert result["predictions"] >= 0.8 * result["sent"]
    assert result["dropped"] == result["sent"] - result["plans"]
    assert result["unrefined_plans"] == result["ok_plans"] > 0
    assert 0.0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert result["rss_start_mb"] > 50.0 and result["rss_end_mb"] > 50.0  # the stack process, not this one
