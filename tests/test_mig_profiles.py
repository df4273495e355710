"""MIG profile names through the fake library: the driver's name where it gives one (nvmlDeviceGetGpuInstanceById,
nvmlGpuInstanceGetInfo, nvmlDeviceGetGpuInstanceProfileInfoV), else one made from the sizes, as nvidia-smi
names A100 and H100 instances."""

from __future__ import annotations

from fakenvml import GIB, Error, GpuSpec, Mig, Scenario

MIB = 1 << 20
H200 = "NVIDIA H200"


def scenario(errors=()) -> Scenario:
    return Scenario(
        gpus=[GpuSpec(name=H200, mig=1)],
        migs=[
            # An H200's 1g.18gb reports about 16.4 GiB: the driver's name, not one made from GiB (1g.17gb).
            Mig(0, 0, gi=9, ci=0, ci_slices=1, mem_total=16_768 * MIB, profile="1g.18gb"),
            # A compute instance of 1 slice inside a 3-slice GPU instance.
            Mig(0, 1, gi=2, ci=1, ci_slices=1, gi_slices=3, mem_total=40_448 * MIB, profile="3g.71gb"),
            # The driver names none: made from the sizes.
            Mig(0, 2, gi=5, ci=0, ci_slices=2, mem_total=20 * GIB),
        ],
        errors=list(errors),
    )


def test_the_drivers_profile_name_is_used_once_per_instance(fake_nvml):
    fake_nvml.write(scenario())
    with fake_nvml.session() as s:
        for _ in range(3):
            gpu = s.poll()["gpus"][0]
        assert [m["profile"] for m in gpu["mig"]] == ["1g.18gb", "1c.3g.71gb", "2g.20gb"]
        # Read once per instance (three), not per poll.
        assert s.calls("nvmlDeviceGetGpuInstanceById") == s.calls("nvmlDeviceGetGpuInstanceProfileInfoV") == 3


def test_without_the_privilege_the_name_is_made_from_the_sizes(fake_nvml):
    fake_nvml.write(scenario(errors=[Error("nvmlDeviceGetGpuInstanceById", "NO_PERMISSION")]))
    with fake_nvml.session() as s:
        snap = s.poll()
        assert [m["profile"] for m in snap["gpus"][0]["mig"]] == ["1g.17gb", "1c.3g.40gb", "2g.20gb"]
        assert not snap["errors"]  # a name is not worth a note each poll
        assert s.calls("nvmlDeviceGetGpuInstanceProfileInfoV") == 0
