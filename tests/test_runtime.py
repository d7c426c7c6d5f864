"""Runtime settings: the "auto" device, threads and the glibc allocator."""

from __future__ import annotations

import platform

import torch

from geogan_hf.runtime import configure_cpu_runtime, resolve_device, tune_allocator


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")


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
