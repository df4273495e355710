"""The demo box's cast: its GPUs, the processes that come and go on them, and their hardware figures.

:mod:`gputab.sampling.demo` runs the story; this module only describes it (see demo.py's docstring). GPU 4 is an
H100 in MIG mode: 3g.40gb + 2g.20gb + 1g.10gb instances and one free slice, jobs on two of the instances.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuModel:
    name: str
    memory_mib: int
    power_limit_w: float
    idle_w: float


H100 = GpuModel("NVIDIA H100 80GB HBM3", 81559, 700.0, 72.0)
A100 = GpuModel("NVIDIA A100-SXM4-80GB", 81920, 400.0, 56.0)
GPUS = (H100, H100, A100, H100, H100)
MIG_GPU = 4
"""GPU 4 is in MIG mode (see :data:`MIG_LAYOUT`)."""
MIG_SLICES = 7
#: GPU 4's MIG instances, as an H100 80GB cuts them: (GPU instance id, compute instance id, compute slices, SMs,
#: memory MiB). 3 + 2 + 1 slices: one of the 7 is free and charges (idle).
MIG_LAYOUT = ((2, 0, 3, 60, 40_448), (3, 0, 2, 32, 20_096), (9, 0, 1, 16, 9_856))


@dataclass(frozen=True)
class Proc:
    pid: int
    gpu: int
    base_sm: float  # SM % this process drives when alone
    memory_mib: int
    start: float  # simulated seconds after session start; with period, the phase of a repeating job
    duration: float  # how long it runs each time (inf = for ever)
    period: float  # 0 = runs once
    name: str
    user: str
    cmdline: tuple[str, ...]
    environ: dict
    ppid: int = 1
    profile: str = "steady"
    """Its hardware figures (see ``PROFILES``) and CPU side (``CPU``)."""
    exited: bool = False
    """Gone from the host while the driver still lists its memory."""
    instance: int | None = None
    """The MIG GPU instance it runs on (compute instance 0), on the MIG GPU only."""


PROCS = (
    Proc(
        31001,
        0,
        93,
        61_440,
        0,
        float("inf"),
        0,
        "python",
        "maria",
        ("python", "train_lora.py", "--model", "llama3-8b", "--rank", "0", "--wandb-api-key=6f1e9cdemo0secret"),
        {"GPUTAB_TAG": "llama3-8b-lora", "LOCAL_RANK": "0"},
        ppid=31000,
    ),
    Proc(
        31002,
        1,
        91,
        60_928,
        0,
        float("inf"),
        0,
        "python",
        "maria",
        ("python", "train_lora.py", "--model", "llama3-8b", "--rank", "1"),
        {"GPUTAB_TAG": "llama3-8b-lora", "LOCAL_RANK": "1"},
        ppid=31000,
    ),
    Proc(
        32010,
        2,
        31,
        22_016,
        0,
        float("inf"),
        0,
        "python",
        "chen",
        ("python", "eval.py", "--suite", "mmlu", "--num-workers", "1"),
        {"GPUTAB_TAG": "eval-mmlu"},
    ),
    Proc(
        33100,
        2,
        45,
        14_336,
        40,
        70,
        150,
        "python",
        "sam",
        ("python", "sweep.py", "--lr", "3e-4"),
        {"SLURM_JOB_ID": "48213"},
    ),
    Proc(
        34500,
        0,
        4,
        2_048,
        15,
        60,
        240,
        "python",
        "alice",
        ("python", "-m", "ipykernel_launcher", "-f", "/run/user/1001/kernel.json"),
        {},
        profile="notebook",
    ),
    # GPU 3, before it settles into idleness: four jobs, one waste reason each, repeating every 5 minutes.
    Proc(
        35500,
        3,
        0,
        6_144,
        2,
        21.5,
        300,
        "python",
        "sam",
        ("python", "train.py", "--resume"),
        {"GPUTAB_TAG": "sam-crashed-run"},
        profile="idle",
        exited=True,
    ),
    Proc(
        35600,
        3,
        88,
        18_432,
        23.5,
        2,
        300,
        "python",
        "chen",
        ("python", "train_resnet.py", "--precision", "32"),
        {"GPUTAB_TAG": "resnet50-fp32"},
        profile="fp32",
    ),
    Proc(
        35700,
        3,
        80,
        9_216,
        25.5,
        2,
        300,
        "python",
        "maria",
        ("python", "finetune.py", "--batch-size", "8"),
        {"GPUTAB_TAG": "bert-base-bs8"},
        profile="small_batch",
    ),
    Proc(
        35800,
        3,
        72,
        30_720,
        27.5,
        1.5,
        300,
        "python",
        "sam",
        ("python", "build_index.py", "--ivf", "65536"),
        {"GPUTAB_TAG": "faiss-index-build"},
        profile="memory",
    ),
    # GPU 4, in MIG mode: an inference server on the 3g.40gb instance, CI tests on the 1g.10gb; 2g.20gb is empty.
    Proc(
        36100,
        4,
        62,
        34_816,
        0,
        float("inf"),
        0,
        "python",
        "chen",
        ("python", "-m", "vllm.entrypoints.openai.api_server", "--model", "mistral-7b"),
        {"GPUTAB_TAG": "mistral-7b-serve"},
        instance=2,
    ),
    Proc(
        36200,
        4,
        60,
        6_144,
        0,
        float("inf"),
        0,
        "python",
        "sam",
        ("pytest", "tests/gpu", "-x"),
        {"GPUTAB_TAG": "ci-gpu-tests"},
        instance=9,
    ),
)

# GPM figures per profile (percent; link rates in GiB/s): SM busy, occupancy, tensor, DRAM, NVLink rx, NVLink tx.
PROFILES = {
    "steady": (88, 55, 46, 41, 3.0, 3.0),
    "stall": (12, 20, 3, 10, 22.0, 22.0),
    "notebook": (4, 6, 0, 2, 0.0, 0.0),
    "idle": (0, 0, 0, 0, 0.0, 0.0),
    "fp32": (84, 50, 0.3, 35, 0.0, 0.0),
    "small_batch": (40, 7, 12, 20, 0.0, 0.0),
    "memory": (22, 30, 0.5, 88, 0.0, 0.0),
}
# The CPU side per pid: (cpu % of its tree, busiest pid, busiest %, runnable %, I/O wait %).
CPU = {
    32010: (104.0, 32011, 99.0, 100.0, 4.0),  # the eval's one dataloader worker pegs a core: input-bound
}
LORA = (31001, 31002)
STALL_PERIOD, STALL_AT, STALL_FOR = 60.0, 40.0, 3.0
"""The LoRA job's all-reduce stall: 3 s of every minute, from 40 s."""
GIB = float(1 << 30)
