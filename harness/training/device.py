"""Resolve ``--device`` and synchronize it before a clock is read."""

from __future__ import annotations

import re
from typing import Any

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """The requested device is malformed or not present on this machine."""


def check_device_name(name: str) -> None:
    if not DEVICE_PATTERN.match(name):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


def resolve_device(name: str) -> Any:
    """The ``torch.device`` for ``name``; ``auto`` picks cuda, then mps, then cpu."""
    import torch

    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but CUDA is not available here")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) "
                "exist"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' requested but MPS is not available here")
    return torch.device(name)


def synchronize(device: Any) -> None:
    """Wait for queued kernels so a clock read measures finished work."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_name(device: Any) -> str:
    """A human name for the hardware behind ``device`` (GPU model or CPU model)."""
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
