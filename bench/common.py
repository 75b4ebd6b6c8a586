"""What every benchmark script shares: naming the hardware, printing markdown rows."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# (what was measured, setting, value, unit)
Row = tuple[str, str, float, str]


def cpu_name() -> str:
    model = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def hardware(device: str = "cpu", threads: int | None = None) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    threads = threads or torch.get_num_threads()
    return f"{cpu_name()}, {threads} thread{'s' * (threads != 1)}"


def print_rows(*sections: tuple[list[Row], str]) -> None:
    """One markdown table of (rows, the hardware they were measured on) sections."""
    print("| benchmark | setting | result | hardware |")
    print("| --- | --- | --- | --- |")
    for rows, where in sections:
        for what, setting, value, unit in rows:
            shown = f"{value:.0f}" if value >= 100 else f"{value:.2f}"
            print(f"| {what} | {setting} | {shown} {unit} | {where} |")
