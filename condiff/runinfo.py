"""What a record says about how it was made: the hardware, the commit, and sha256 digests of files.

``train.py``, ``evaluate.py`` and the tools write these into ``training.json``, ``results.json`` and
the weights cards, so every figure names the machine and the code that produced it.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

import torch


def bf16_on_cpu() -> bool:
    """Whether this CPU has bf16 units (AVX-512 BF16 or AMX): without them bf16 autocast is emulated, and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def hardware() -> str:
    """The GPU's name, else the CPU's model (where Linux names it), architecture, bf16 units (one model name
    trains 2-3x apart with and without them) and threads: ``"CPU: AMD EPYC (x86_64, bf16 units), 2 threads"``."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    name = next((line.partition(":")[2].strip() for line in info if line.startswith("model name")), "")
    arch, threads = platform.machine(), torch.get_num_threads()
    units = f"{arch}, {'bf16 units' if bf16_on_cpu() else 'no bf16 units'}"
    cpu = f"{name} ({units})" if name and name != arch else units
    return f"CPU: {cpu}, {threads} thread{'s' * (threads != 1)}"


def git_commit() -> str:
    """The commit of this code: ``CONDIFF_COMMIT`` if set (copies whose .git may be stale), else git's."""
    if os.environ.get("CONDIFF_COMMIT"):
        return os.environ["CONDIFF_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or "unknown"


def sha256(path: Path) -> str:
    """The sha256 of one file, as hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weight_files(folder: Path) -> list[Path]:
    """A pipeline folder's safetensors files, sorted; a run's ``snapshots/`` and checkpoints are not its weights."""
    folder = Path(folder)
    parts = {p: p.relative_to(folder).parts for p in folder.rglob("*.safetensors")}
    return sorted(p for p, part in parts.items() if "snapshots" not in part and not part[0].startswith("checkpoint"))


def weights_digest(folder: Path) -> str:
    """sha256 over a model folder's safetensors files: ties a results row to the weights it measured."""
    digest = hashlib.sha256()
    for path in weight_files(folder):
        digest.update(path.read_bytes())
    return digest.hexdigest()
