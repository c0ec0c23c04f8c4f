"""FFT plumbing shared by the chain's numpy stages (deconvolution, kernel estimation).

Two facts make these stages fast on a small CPU: pocketfft is several times slower on lengths with a
prime factor above 5, and one transform is single-threaded but releases the GIL, so independent
transforms (colour channels, gradient directions) run in parallel on threads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fast_length(n: int) -> int:
    """The smallest m ≥ n with no prime factor above 5."""
    m = n
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="fft")


def parallel(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[function(item) for item in items], on a process-wide thread pool (for GIL-free numpy work)."""
    return list(_pool().map(function, items))
