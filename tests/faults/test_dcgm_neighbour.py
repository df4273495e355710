"""A good neighbour to DCGM (issue 24): where nv-hostengine or dcgm-exporter runs, gputab does not start GPM
sampling (both read the same hardware counters), reads the profiling figures from dcgm-exporter's /metrics on this
host, and says where each GPU's figures came from.

Real parts: a process really named ``nv-hostengine`` (a copy of sleep), a fake dcgm-exporter serving HTTP on
127.0.0.1, and the fake libnvidia-ml.so.1 with GPM support for the backend.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fakenvml import GpuSpec, Scenario

UUID0 = "GPU-fa4e0000-1111-2222-3333-000000000000"  # what the fake library calls GPU 0 (Scenario.render)

PAGE = f"""# HELP DCGM_FI_PROF_SM_ACTIVE The ratio of cycles an SM has at least 1 warp assigned.
# TYPE DCGM_FI_PROF_SM_ACTIVE gauge
DCGM_FI_PROF_SM_ACTIVE{{gpu="0",UUID="{UUID0}",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="box"}} 0.42
DCGM_FI_PROF_SM_ACTIVE{{gpu="0",UUID="{UUID0}",device="nvidia0",GPU_I_ID="1",GPU_I_PROFILE="3g.40gb"}} 0.99
DCGM_FI_PROF_SM_OCCUPANCY{{gpu="0",UUID="{UUID0}",device="nvidia0"}} 0.25
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{gpu="0",UUID="{UUID0}",device="nvidia0"}} 0.125
DCGM_FI_PROF_DRAM_ACTIVE{{gpu="0",UUID="{UUID0}",device="nvidia0"}} NaN
DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="{UUID0}",device="nvidia0"}} 77
"""


@pytest.fixture
def exporter():
    """A fake dcgm-exporter on 127.0.0.1: its /metrics page, and how often it was asked."""
    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics", asked
    server.shutdown()
    server.server_close()


@pytest.fixture
def hostengine(tmp_path):
    """A process whose name (/proc/PID/comm) is nv-hostengine, as DCGM's host engine is."""
    exe = tmp_path / "nv-hostengine"
    shutil.copy(shutil.which("sleep"), exe)
    proc = subprocess.Popen([str(exe), "60"])
    yield proc
    proc.kill()
    proc.wait()


def gpm_gpu() -> Scenario:
    return Scenario(gpus=[GpuSpec(gpm=1, gpm_sm_util=45, gpm_sm_occupancy=30, gpm_tensor=20, gpm_dram_bw=10)])


def two_polls(fake_nvml, **env) -> tuple[dict, int]:
    fake_nvml.write(gpm_gpu())
    with fake_nvml.session(**env) as s:
        s.poll()
        snap = s.poll()
        return snap, s.calls("nvmlGpmSampleAlloc")


def test_beside_dcgm_gpm_is_left_alone_and_the_exporter_is_read(fake_nvml, exporter, hostengine):
    url, asked = exporter
    snap, gpm_allocs = two_polls(fake_nvml, GPUTAB_DCGM_EXPORTER_URL=url)
    assert gpm_allocs == 0, "GPM sampling was started beside DCGM"
    g = snap["gpus"][0]
    assert g["activity_source"] == "dcgm-exporter"
    assert g["sm_active_pct"] == pytest.approx(42.0)  # the GPU's row, not its MIG instance's (0.99)
    assert g["sm_occupancy_pct"] == pytest.approx(25.0)
    assert g["tensor_active_pct"] == pytest.approx(12.5)
    assert g["dram_bw_pct"] is None  # NaN is no figure
    assert len(asked) == 2  # once per poll
    assert any("DCGM runs on this host (nv-hostengine)" in n for n in snap["host_notes"]), snap["host_notes"]


def test_without_dcgm_gpm_is_used(fake_nvml, exporter):
    url, asked = exporter
    snap, gpm_allocs = two_polls(fake_nvml, GPUTAB_DCGM_EXPORTER_URL=url)
    assert gpm_allocs > 0
    g = snap["gpus"][0]
    assert g["activity_source"] == "gpm" and g["sm_active_pct"] == pytest.approx(45.0)
    assert asked == [], "no DCGM here: its exporter is not asked"
    assert not any("DCGM" in n for n in snap["host_notes"])


def test_gpm_on_overrides_beside_dcgm(fake_nvml, exporter, hostengine):
    url, _ = exporter
    snap, gpm_allocs = two_polls(fake_nvml, GPUTAB_DCGM_EXPORTER_URL=url, GPUTAB_GPM="on")
    assert gpm_allocs > 0
    assert any("GPM sampling is on (GPUTAB_GPM=on)" in n for n in snap["host_notes"])


def test_an_exporter_on_another_host_is_never_asked(monkeypatch):
    from gputab.sampling.dcgm import exporter_url

    monkeypatch.setenv("GPUTAB_DCGM_EXPORTER_URL", "http://10.1.2.3:9400/metrics")
    assert exporter_url() is None
    monkeypatch.setenv("GPUTAB_DCGM_EXPORTER_URL", "http://[::1]:9400/metrics")
    assert exporter_url() == "http://[::1]:9400/metrics"
    monkeypatch.delenv("GPUTAB_DCGM_EXPORTER_URL")
    assert exporter_url() == "http://127.0.0.1:9400/metrics"
