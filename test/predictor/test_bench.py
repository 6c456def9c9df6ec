from rap_planner.core.predictor.bench import run_predictor_bench


def test_bench_reports_percentiles_for_model_and_constant_velocity():
    out = run_predictor_bench(agents=8, repeats=5, warmup=1, num_threads=1)
    assert out["agents"] == 8 and out["modes"] == 6
    assert 0 < out["p50_ms"] <= out["p95_ms"] and out["cv_p50_ms"] > 0
