"""Process-wide runtime settings for a process that plans: call ``tune_process()`` once from its entry point.

These settings change the whole process (every thread, every library), which is why they live here and
not in the domain code: entry points (``rap-planner``, the ROS node executables, the bench children,
the closed-loop evaluation workers) opt in, and a library user or a test gets numpy's defaults.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's maximum
_TRIM_THRESHOLD_BYTES = 256 << 20


@dataclass(frozen=True)
class ProcessTuning:
    """What ``tune_process`` applied."""

    allocator: bool  # glibc keeps freed memory for reuse
    blas_libraries: tuple[str, ...]  # BLAS libraries (paths) now on one thread
    torch_threads: int  # torch's intra-op threads for inference


def reuse_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of mapping fresh pages for every large array.

    A plan allocates a few hundred numpy temporaries of 0.1-2 MB; by default glibc serves each from
    a fresh mmap and page-faults it in, which costs about a third of the planning time. The process
    keeps up to ~256 MB of freed heap; returns False where this does not apply (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) == 1
        return bool(ok and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1)
    except (OSError, AttributeError):
        return False


def single_threaded_blas() -> tuple[str, ...]:
    """Put numpy's and scipy's BLAS on one thread; returns the paths of the libraries limited.

    The cost kernel runs its own threads, one per core, and calls BLAS from each; BLAS's spinning
    workers next to them (or next to a busy process) cost 10-30x. OpenMP (torch's intra-op threads)
    is left alone. Only libraries loaded now are limited, so numpy and scipy.linalg are loaded first.
    """
    import numpy  # noqa: F401  (loads numpy's BLAS)
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    blas = ThreadpoolController().select(user_api="blas")
    blas.limit(limits=1)
    return tuple(str(lib["filepath"]) for lib in blas.info())


def single_threaded_torch() -> int:
    """One intra-op torch thread: the predictor's tensors are small, and on two cores shared with the planner a
    second thread buys little and makes the tail latency much worse. It also fixes the float rounding, so every
    process running the stack (node, closed loop, test) forecasts the same bits. Training sets its own count."""
    import torch

    torch.set_num_threads(1)
    return torch.get_num_threads()


@functools.cache
def tune_process() -> ProcessTuning:
    """Apply the settings, once per process (later calls return the first result)."""
    return ProcessTuning(allocator=reuse_freed_memory(), blas_libraries=single_threaded_blas(),
                         torch_threads=single_threaded_torch())
