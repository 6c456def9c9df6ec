import json
import platform
import subprocess
import sys

# Process-wide settings: each check runs in a fresh interpreter, so this test process keeps its defaults.
PROBE = """
import json, torch
torch.set_num_threads(2)
torch_before = (torch.get_num_threads(), torch.get_num_interop_threads())
from threadpoolctl import threadpool_info
from rap_planner.runtime_tuning import tune_process
first = tune_process()
print(json.dumps({
    "allocator": first.allocator,
    "limited": list(first.blas_libraries),
    "again_same": tune_process() is first,
    "torch_before": torch_before,
    "torch_after": (torch.get_num_threads(), torch.get_num_interop_threads()),
    "pools": [(p["user_api"], p["filepath"], p["num_threads"]) for p in threadpool_info()],
}))
"""


def probe() -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tune_process_puts_blas_and_torch_inference_on_one_thread():
    result = probe()
    limited = result["limited"]
    assert any("numpy" in path for path in limited) and any("scipy" in path for path in limited)
    threads = {path: n for api, path, n in result["pools"] if api == "blas"}
    assert all(threads[path] == 1 for path in limited)
    assert result["torch_before"][0] == 2 and result["torch_after"] == [1, result["torch_before"][1]]
    assert result["again_same"]
    assert result["allocator"] == (platform.libc_ver()[0] == "glibc")
