"""MIG profile names through the fake library: the driver's name where it gives one (nvmlDeviceGetGpuInstanceById,
nvmlGpuInstanceGetInfo, nvmlDeviceGetGpuInstanceProfileInfoV), else one made from the sizes that matches NVIDIA's
published names (MIG user guide, "Supported MIG Profiles") on the A100, H100 and H200."""

from __future__ import annotations

import pytest

from fakenvml import Error, GpuSpec, Mig, Scenario
from gputab.sampling.mig import profile_name

MIB = 1 << 20
H200 = "NVIDIA H200"
H200_MIB = 143_771
"""What an H200 (141 GB HBM3e) reports as its memory, MiB."""

# GPU instance profiles as NVIDIA's MIG user guide names them ("Supported MIG Profiles"), with what each instance
# reports as its memory (GiB, `nvidia-smi mig -lgip`'s "Memory" column). H100 and A100: lgip outputs published with
# those GPUs (9.75/19.62/39.50/79.25 GiB; 4.75/9.75/19.62/39.50 GiB); H200: 16.00 GiB for 1g.18gb, 32.50 for
# 1g.35gb and 2g.35gb and 140.00 for 7g.141gb from an lgip output; the 3g/4g.71gb size (half the memory) is taken as
# 66.50 GiB, in line with the others (any size within a sixteenth of the GPU's memory names it the same).
PUBLISHED = {
    "H200 141GB": (
        H200_MIB,
        [("1g.18gb", 1, 16.00), ("1g.35gb", 1, 32.50), ("2g.35gb", 2, 32.50), ("3g.71gb", 3, 66.50),
         ("4g.71gb", 4, 66.50), ("7g.141gb", 7, 140.00)],
    ),
    "H100 80GB": (
        81_559,
        [("1g.10gb", 1, 9.75), ("1g.20gb", 1, 19.62), ("2g.20gb", 2, 19.62), ("3g.40gb", 3, 39.50),
         ("4g.40gb", 4, 39.50), ("7g.80gb", 7, 79.25)],
    ),
    "A100 40GB": (
        40_960,
        [("1g.5gb", 1, 4.75), ("1g.10gb", 1, 9.75), ("2g.10gb", 2, 9.75), ("3g.20gb", 3, 19.62),
         ("4g.20gb", 4, 19.62), ("7g.40gb", 7, 39.50)],
    ),
    "A100 80GB": (
        81_920,
        [("1g.10gb", 1, 9.75), ("1g.20gb", 1, 19.62), ("2g.20gb", 2, 19.62), ("3g.40gb", 3, 39.50),
         ("4g.40gb", 4, 39.50), ("7g.80gb", 7, 79.25)],
    ),
}  # fmt: skip


def mib(gib: float) -> int:
    return round(gib * 1024)


@pytest.mark.parametrize("gpu", sorted(PUBLISHED))
def test_names_made_from_the_sizes_are_nvidias(gpu):
    parent, profiles = PUBLISHED[gpu]
    made = [profile_name(slices, slices, mib(gib), parent_memory_mib=parent) for _, slices, gib in profiles]
    assert made == [name for name, _, _ in profiles]


def test_without_the_gpus_memory_an_h200s_names_come_out_wrong():
    """What the name was made from before (the instance's GiB rounded up): right on an H100, wrong on an H200. The
    reason the GPU's memory is passed."""
    _, profiles = PUBLISHED["H200 141GB"]
    assert [profile_name(s, s, mib(g)) for _, s, g in profiles] == [
        "1g.16gb", "1g.33gb", "2g.33gb", "3g.67gb", "4g.67gb", "7g.140gb",
    ]  # fmt: skip


def one_per_slot(profiles) -> list[Mig]:
    """An instance of each profile, one per slot of GPU 0, with the memory the driver reports for it."""
    return [
        Mig(0, slot, gi=slot + 1, ci=0, ci_slices=slices, mem_total=mib(gib) * MIB)
        for slot, (_, slices, gib) in enumerate(profiles)
    ]


def scenario(errors=(), layout=None) -> Scenario:
    return Scenario(
        gpus=[GpuSpec(name=H200, mig=1, mem_total=H200_MIB * MIB)],
        migs=layout
        or [
            # A 1g.18gb reports 16 GiB: the driver's name says 18.
            Mig(0, 0, gi=9, ci=0, ci_slices=1, mem_total=mib(16.0) * MIB, profile="1g.18gb"),
            # A compute instance of 1 slice inside a 3-slice GPU instance.
            Mig(0, 1, gi=2, ci=1, ci_slices=1, gi_slices=3, mem_total=mib(66.5) * MIB, profile="3g.71gb"),
            # The driver names none: made from the sizes.
            Mig(0, 2, gi=5, ci=0, ci_slices=2, mem_total=mib(32.5) * MIB),
        ],
        errors=list(errors),
    )


def test_the_drivers_profile_name_is_used_once_per_instance(fake_nvml):
    fake_nvml.write(scenario())
    with fake_nvml.session() as s:
        for _ in range(3):
            gpu = s.poll()["gpus"][0]
        assert [m["profile"] for m in gpu["mig"]] == ["1g.18gb", "1c.3g.71gb", "2g.35gb"]
        # Read once per instance (three), not per poll.
        assert s.calls("nvmlDeviceGetGpuInstanceById") == s.calls("nvmlDeviceGetGpuInstanceProfileInfoV") == 3


def test_without_the_privilege_the_name_is_made_from_the_sizes(fake_nvml):
    fake_nvml.write(scenario(errors=[Error("nvmlDeviceGetGpuInstanceById", "NO_PERMISSION")]))
    with fake_nvml.session() as s:
        snap = s.poll()
        assert [m["profile"] for m in snap["gpus"][0]["mig"]] == ["1g.18gb", "1c.3g.71gb", "2g.35gb"]
        assert not snap["errors"]  # a name is not worth a note each poll
        assert s.calls("nvmlDeviceGetGpuInstanceProfileInfoV") == 0


def test_a_fake_h200_without_driver_names_gets_every_published_name(fake_nvml):
    """Each H200 profile as an instance of a fake H200 (one per slot, its memory as the driver reports it), the
    driver naming none (no privilege): the backend names each as NVIDIA does."""
    _, profiles = PUBLISHED["H200 141GB"]
    fake_nvml.write(scenario([Error("nvmlDeviceGetGpuInstanceById", "NO_PERMISSION")], one_per_slot(profiles)))
    with fake_nvml.session() as s:
        gpu = s.poll()["gpus"][0]
        assert [m["profile"] for m in gpu["mig"]] == [name for name, _, _ in profiles]
        assert s.calls("nvmlDeviceGetGpuInstanceProfileInfoV") == 0


def test_an_h100_keeps_its_names(fake_nvml):
    parent, profiles = PUBLISHED["H100 80GB"]
    fake_nvml.write(
        Scenario(
            gpus=[GpuSpec(mig=1, mem_total=parent * MIB)],
            migs=one_per_slot(profiles),
            errors=[Error("nvmlDeviceGetGpuInstanceById", "NO_PERMISSION")],
        )
    )
    with fake_nvml.session() as s:
        assert [m["profile"] for m in s.poll()["gpus"][0]["mig"]] == [name for name, _, _ in profiles]
