"""CPU runtime settings: threads and the glibc allocator."""

from __future__ import annotations

import platform

import torch

from geogan_hf.runtime import configure_cpu_runtime, tune_allocator


def test_configure_cpu_runtime_sets_threads_and_reports_the_allocator():
    before = torch.get_num_threads()
    try:
        settings = configure_cpu_runtime(1, allocator=False)
        assert settings == {"threads": 1, "tuned_allocator": False}
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert configure_cpu_runtime()["threads"] == before  # None keeps the thread count


def test_allocator_tuning_applies_on_glibc_only():
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_allocator() is glibc
