from rap_planner.bench.planner import run_planner_bench


def test_planner_bench_reports_every_figure(capsys):
    result = run_planner_bench(agents=4, scenarios=8, candidates=100, repeats=3, naive_repeats=1, warmup=1)
    for key in ("p50_ms", "p95_ms", "refine_p95_ms", "candidates", "scenarios", "agents", "naive_p50_ms", "speedup"):
        assert key in result
    assert result["candidates"] >= 100 and result["scenarios"] == 8 and result["agents"] == 4
    assert 0.0 < result["p50_ms"] <= result["p95_ms"]
    assert "planner benchmark" in capsys.readouterr().out
