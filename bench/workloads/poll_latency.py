"""Time one poll of every GPU, with gputab's NvmlBackend or with nvitop's Device API, on the fake NVML.

Run in a subprocess whose LD_LIBRARY_PATH points at the fake: ``poll_latency.py gputab|nvitop|gpustat POLLS``.
Prints JSON: per-poll wall times in seconds and the GPU count.

nvitop is asked for the same figures gputab's poll reads: utilization (GPU, memory), memory used/total, power and
limit, energy counter when it has one, temperature, SM clock, PCIe rx/tx, and the processes on each GPU with their
SM utilization.
"""

from __future__ import annotations

import json
import sys
import time


def gputab_poller():
    from gputab.sampling.nvml import NvmlBackend

    backend = NvmlBackend()
    n = len(backend.poll().gpus)
    return backend.poll, n


def nvitop_poller():
    from nvitop import Device

    devices = Device.all()

    def poll():
        out = []
        for d in devices:
            row = (
                d.gpu_utilization(),
                d.memory_utilization(),
                d.memory_used(),
                d.memory_total(),
                d.power_usage(),
                d.power_limit(),
                d.temperature(),
                d.sm_clock(),
                d.pcie_rx_throughput(),
                d.pcie_tx_throughput(),
            )
            procs = d.processes()
            sm = [p.gpu_sm_utilization() for p in procs.values()]
            out.append((row, sm))
        return out

    return poll, len(devices)


def gpustat_poller():
    from gpustat import GPUStatCollection

    # gpustat's own unit of work: every `gpustat -i` refresh is one new_query(), which initialises and shuts
    # NVML down each time and also reads the host's facts about each process (psutil).
    n = len(GPUStatCollection.new_query().gpus)
    return GPUStatCollection.new_query, n


def main() -> None:
    which, polls = sys.argv[1], int(sys.argv[2])
    poll, n = {"gputab": gputab_poller, "nvitop": nvitop_poller, "gpustat": gpustat_poller}[which]()
    for _ in range(5):  # warm caches and lazy imports, as a monitor's steady state would have them
        poll()
    times = []
    for _ in range(polls):
        t0 = time.perf_counter()
        poll()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"gpus": n, "times": times}))


if __name__ == "__main__":
    main()
