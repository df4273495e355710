"""Attribution: real child processes for the host rules, small fake inspectors for the rest."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gputab.attribution import (
    MAX_TAG_CHARS,
    Attributor,
    container_id,
    sanitize_tag,
    validate_tag,
)
from gputab.config.settings import AttributionConfig, TagRule
from gputab.redaction import is_secret_name, redact_cmdline
from gputab.sampling.backend import ProcessFacts, ProcessInspector
from gputab.sampling.demo import DemoInspector
from gputab.sampling.host import HostInspector

SLEEP = "import time; time.sleep(30)"


# -- helpers -----------------------------------------------------------------------------------------------------


class BoundedHostInspector(HostInspector):
    """The host inspector, blind above this test process.

    Ancestry is then the test's own doing: a tag or SLURM_JOB_ID in the environment pytest was started with
    (tests run under `gputab run`, or in a Slurm job) cannot leak into a child's attribution.
    """

    def facts(self, pid):
        f = super().facts(pid)
        if f is not None and f.ppid == os.getpid():
            f = dataclasses.replace(f, ppid=None)
        return f


class FakeInspector(ProcessInspector):
    """Facts from a dict the test edits; counts calls to prove caching."""

    def __init__(self, procs: dict[int, ProcessFacts] | None = None) -> None:
        self.procs = dict(procs or {})
        self.facts_calls = 0

    def facts(self, pid):
        self.facts_calls += 1
        return self.procs.get(pid)


def fact(
    pid=100,
    create_time=1000.0,
    name="python",
    user="ana",
    cmdline=("python", "x.py"),
    environ=None,
    ppid=None,
    cgroup=None,
) -> ProcessFacts:
    return ProcessFacts(
        pid=pid,
        create_time=create_time,
        name=name,
        user=user,
        cmdline=tuple(cmdline),
        environ={} if environ is None else environ,
        ppid=ppid,
        cgroup=cgroup,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GPUTAB_TAG", "SLURM_JOB_ID")}
    env.update(extra)
    return env


@pytest.fixture
def spawn():
    """Start `python -c CODE` children with chosen environments; kill them all afterwards."""
    procs: list[subprocess.Popen] = []

    def start(env: dict[str, str], code: str = SLEEP, **kwargs) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", code], env=env, **kwargs)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def wait_env(pid: int, key: str, timeout: float = 10.0) -> None:
    """Wait until the child has exec'ed (its environment is readable and holds ``key``) to avoid a race."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        f = HostInspector().facts(pid)
        if f is not None and f.environ is not None and key in f.environ and f.cmdline[1:2] == ("-c",):
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never showed {key}")


# -- real processes ------------------------------------------------------------------------------------------------


def test_host_inspector_reads_a_real_process(spawn):
    p = spawn(clean_env(GPUTAB_TAG="t1"))
    wait_env(p.pid, "GPUTAB_TAG")
    f = HostInspector().facts(p.pid)
    assert f.pid == p.pid and f.ppid == os.getpid()
    assert f.create_time == HostInspector().create_time(p.pid) > 0
    assert f.cmdline == (sys.executable, "-c", SLEEP)
    assert f.environ["GPUTAB_TAG"] == "t1"
    assert f.uid == os.getuid() and f.user
    assert f.cgroup is None or "::" in f.cgroup or ":" in f.cgroup


def test_host_inspector_gone_process(spawn):
    p = spawn(clean_env(), code="pass")
    p.wait(timeout=10)
    assert HostInspector().facts(p.pid) is None
    assert HostInspector().create_time(p.pid) is None


def test_env_tag_from_real_process(spawn):
    p = spawn(clean_env(GPUTAB_TAG="llama-lora"))
    wait_env(p.pid, "GPUTAB_TAG")
    info = Attributor(BoundedHostInspector(), AttributionConfig()).attribute([p.pid])[p.pid]
    assert (info.tag, info.source) == ("llama-lora", "env")
    assert info.create_time is not None and info.user and info.name.startswith("python")


def test_inherited_tag_from_real_parent(spawn):
    # The parent has the tag; it starts a child with the variable removed, as launchers sometimes do.
    code = (
        "import os, subprocess, sys, time\n"
        "env = {k: v for k, v in os.environ.items() if k != 'GPUTAB_TAG'}\n"
        f"c = subprocess.Popen([sys.executable, '-c', {SLEEP!r}], env=env)\n"
        "print(c.pid, flush=True)\n"
        "try:\n    time.sleep(30)\nfinally:\n    c.kill()\n"
    )
    parent = spawn(clean_env(GPUTAB_TAG="ddp-job"), code=code, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        wait_env(child, "PATH")
        infos = Attributor(BoundedHostInspector(), AttributionConfig()).attribute([child, parent.pid])
        assert "GPUTAB_TAG" not in HostInspector().facts(child).environ
        assert (infos[child].tag, infos[child].source) == ("ddp-job", "inherited")
        assert (infos[parent.pid].tag, infos[parent.pid].source) == ("ddp-job", "env")
    finally:
        os.kill(child, 9)


def test_scheduler_key_from_real_process(spawn):
    p = spawn(clean_env(SLURM_JOB_ID="48213"))
    wait_env(p.pid, "SLURM_JOB_ID")
    info = Attributor(BoundedHostInspector(), AttributionConfig()).attribute([p.pid])[p.pid]
    assert (info.tag, info.source) == ("slurm:48213", "key")


def test_rule_on_real_command_line(spawn, tmp_path):
    script = tmp_path / "train_resnet.py"
    script.write_text("import time\ntime.sleep(30)\n")
    p = subprocess.Popen([sys.executable, str(script), "--api-key", "s3cr3t"], env=clean_env())
    try:
        cfg = AttributionConfig(rules=[TagRule(pattern=r"train_(\w+)\.py", tag=r"exp:\1")])
        end = time.monotonic() + 10
        while str(script) not in " ".join(HostInspector().facts(p.pid).cmdline) and time.monotonic() < end:
            time.sleep(0.02)
        info = Attributor(BoundedHostInspector(), cfg).attribute([p.pid])[p.pid]
        assert (info.tag, info.source) == ("exp:resnet", "rule")
        assert "s3cr3t" not in info.cmdline and "--api-key ***" in info.cmdline
    finally:
        p.kill()
        p.wait(timeout=10)


def test_untagged_real_process(spawn):
    p = spawn(clean_env())
    wait_env(p.pid, "PATH")
    info = Attributor(BoundedHostInspector(), AttributionConfig()).attribute([p.pid])[p.pid]
    if info.source == "container":  # the test suite itself runs inside a container
        assert info.tag.startswith("container:")
    else:
        assert info.source == "untagged"
        assert info.tag == f"untagged:{info.user}/{info.name}"


# -- rules on fake facts ------------------------------------------------------------------------------------------


def test_rule_order_env_beats_key_beats_rule_beats_container():
    cg = "0::/system.slice/docker-" + "ab" * 32 + ".scope"
    cfg = AttributionConfig(rules=[TagRule(r"x\.py", "rule-tag")])
    cases = [
        ({"GPUTAB_TAG": "t", "SLURM_JOB_ID": "1"}, "t", "env"),
        ({"SLURM_JOB_ID": "1"}, "slurm:1", "key"),
        ({}, "rule-tag", "rule"),
    ]
    for environ, tag, source in cases:
        info = Attributor(FakeInspector({100: fact(environ=environ, cgroup=cg)}), cfg).attribute([100])[100]
        assert (info.tag, info.source) == (tag, source)
    info = Attributor(FakeInspector({100: fact(cmdline=("y",), cgroup=cg)}), cfg).attribute([100])[100]
    assert (info.tag, info.source) == ("container:" + "ab" * 6, "container")


def test_key_is_found_up_the_chain_and_templates_apply():
    procs = {
        100: fact(100, environ={}, ppid=50),
        50: fact(50, create_time=900.0, environ={"PBS_JOBID": "77.head"}, ppid=1),
        1: fact(1, create_time=1.0, environ={}, ppid=0),
    }
    cfg = AttributionConfig(env_keys={"SLURM_JOB_ID": "slurm:{}", "PBS_JOBID": "pbs:{}"})
    info = Attributor(FakeInspector(procs), cfg).attribute([100])[100]
    assert (info.tag, info.source) == ("pbs:77.head", "key")


def test_nearest_ancestor_tag_wins_and_reused_parent_pid_is_not_an_ancestor():
    procs = {
        100: fact(100, environ={}, ppid=50),
        50: fact(50, create_time=900.0, environ={"GPUTAB_TAG": "near"}, ppid=10),
        10: fact(10, create_time=800.0, environ={"GPUTAB_TAG": "far"}, ppid=0),
    }
    assert Attributor(FakeInspector(procs)).attribute([100])[100].tag == "near"
    # PID 50 now belongs to a process younger than 100: the real parent is gone, its PID reused.
    procs[50] = fact(50, create_time=2000.0, environ={"GPUTAB_TAG": "stranger"}, ppid=10)
    info = Attributor(FakeInspector(procs)).attribute([100])[100]
    assert info.source == "untagged"


def test_unreadable_environment_falls_through_to_rule_then_untagged():
    """environ=None (another user's process without root) skips the env rules, even a tagged parent's."""
    procs = {
        100: dataclasses.replace(fact(100, cmdline=("python", "train_bert.py"), ppid=50), environ=None),
        50: fact(50, create_time=900.0, environ={"GPUTAB_TAG": "parent", "SLURM_JOB_ID": "9"}),
    }
    cfg = AttributionConfig(rules=[TagRule(r"train_(\w+)\.py", r"exp:\1")])
    info = Attributor(FakeInspector(procs), cfg).attribute([100])[100]
    assert (info.tag, info.source) == ("exp:bert", "rule")
    info = Attributor(FakeInspector(procs), AttributionConfig()).attribute([100])[100]
    assert (info.tag, info.source) == ("untagged:ana/python", "untagged")


def test_unreadable_ancestor_stops_the_walk():
    procs = {
        100: fact(100, environ={}, ppid=50),
        50: dataclasses.replace(fact(50, create_time=900.0, ppid=10), environ=None),
        10: fact(10, create_time=800.0, environ={"GPUTAB_TAG": "beyond"}),
    }
    assert Attributor(FakeInspector(procs)).attribute([100])[100].source == "untagged"


def test_parent_loop_terminates():
    procs = {100: fact(100, environ={}, ppid=50), 50: fact(50, create_time=900.0, environ={}, ppid=100)}
    assert Attributor(FakeInspector(procs)).attribute([100])[100].source == "untagged"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("run\n2", "run_2"),
        ("  padded  ", "padded"),
        ("(idle)", "_idle)"),
        ("x" * 300, "x" * MAX_TAG_CHARS),
        ("\x1b[31mred", "_[31mred"),
    ],
)
def test_bad_env_values_are_sanitised(value, expected):
    info = Attributor(FakeInspector({100: fact(environ={"GPUTAB_TAG": value})})).attribute([100])[100]
    assert (info.tag, info.source) == (expected, "env")
    assert validate_tag(info.tag) == info.tag


def test_empty_env_value_falls_through():
    procs = {100: fact(environ={"GPUTAB_TAG": "  ", "SLURM_JOB_ID": "5"})}
    assert Attributor(FakeInspector(procs)).attribute([100])[100].tag == "slurm:5"


def test_rule_with_bad_template_is_skipped_not_fatal():
    cfg = AttributionConfig(rules=[TagRule(r"train", r"exp:\3"), TagRule(r"train_(\w+)", r"ok:\1")])
    info = Attributor(FakeInspector({100: fact(cmdline=("train_a",))}), cfg).attribute([100])[100]
    assert (info.tag, info.source) == ("ok:a", "rule")


def test_invalid_rule_pattern_is_refused_at_construction():
    with pytest.raises(ValueError, match="invalid attribution rule"):
        Attributor(FakeInspector(), AttributionConfig(rules=[TagRule("train_(", "x")]))


def test_untagged_name_is_sanitised():
    info = Attributor(FakeInspector({100: fact(name="evil\x1b]0;x\x07", user=None)})).attribute([100])[100]
    assert info.tag.startswith("untagged:?/evil") and info.tag.isprintable()
    assert info.name.isprintable()


def test_demo_inspector_story():
    infos = Attributor(DemoInspector()).attribute([31001, 31002, 32010, 33100, 34500])
    assert {p: (i.tag, i.source) for p, i in infos.items()} == {
        31001: ("llama3-8b-lora", "env"),
        31002: ("llama3-8b-lora", "env"),
        32010: ("eval-mmlu", "env"),
        33100: ("slurm:48213", "key"),
        34500: ("untagged:alice/python", "untagged"),
    }
    assert "6f1e9cdemo0secret" not in infos[31001].cmdline


# -- containers --------------------------------------------------------------------------------------------------

ID = "4f1e2d3c" + "0123456789abcdef" * 3 + "01234567"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n", ID[:12]),  # cgroup v1, docker
        (f"0::/system.slice/docker-{ID}.scope\n", ID[:12]),  # cgroup v2, docker with systemd driver
        (
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d"
            f".slice/cri-containerd-{ID}.scope\n",
            ID[:12],
        ),  # Kubernetes, containerd
        (f"0::/kubepods.slice/kubepods-pod1a2b.slice/crio-{ID}.scope\n", ID[:12]),  # CRI-O
        (f"5:cpuset:/kubepods/burstable/pod1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d/{ID}\n", ID[:12]),  # k8s cgroupfs
        (f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container\n", ID[:12]),
        (f"0::/docker/{'a' * 64}/docker/{ID}\n", ID[:12]),  # docker in docker: the inner one
        ("0::/user.slice/user-1000.slice/session-3.scope\n", None),  # systemd user slice
        ("0::/system.slice/ssh.service\n", None),
        ("0::/\n", None),
        ("", None),
        (None, None),
        (f"0::/docker/{ID[:40]}\n", None),  # too short to be an id
    ],
)
def test_container_id_from_cgroup(text, expected):
    assert container_id(text) == expected


# -- cache, PID reuse, gone ---------------------------------------------------------------------------------------


def test_cache_is_per_pid_and_create_time():
    insp = FakeInspector({100: fact(environ={"GPUTAB_TAG": "old"})})
    a = Attributor(insp)
    assert a.attribute([100])[100].tag == "old"
    insp.procs[100] = fact(environ={"GPUTAB_TAG": "changed-but-same-process"})
    assert a.attribute([100])[100].tag == "old"  # same (pid, create_time): the cached answer
    # The PID is reused by a new process: new create_time, new tag.
    insp.procs[100] = fact(create_time=5000.0, environ={"GPUTAB_TAG": "new"})
    info = a.attribute([100])[100]
    assert (info.tag, info.create_time) == ("new", 5000.0)


def test_cheap_create_time_check_avoids_facts():
    class Cheap(FakeInspector):
        def create_time(self, pid):
            f = self.procs.get(pid)
            return None if f is None else f.create_time

    insp = Cheap({100: fact(environ={"GPUTAB_TAG": "t"})})
    a = Attributor(insp)
    for _ in range(5):
        assert a.attribute([100])[100].tag == "t"
    assert insp.facts_calls == 1


def test_gone_process():
    insp = FakeInspector({100: fact(environ={"GPUTAB_TAG": "job"})})
    a = Attributor(insp)
    info = a.attribute([100, 7])[7]
    assert (info.tag, info.source, info.create_time) == ("untagged:?/pid7", "gone", None)
    del insp.procs[100]
    # Known before it exited: its last interval still goes to its job.
    info = a.attribute([100])[100]
    assert (info.tag, info.source) == ("job", "gone")


# -- manual tags -------------------------------------------------------------------------------------------------


def test_set_manual_overrides_rules_and_is_keyed_by_create_time():
    insp = FakeInspector({100: fact(), 101: fact(101)})
    a = Attributor(insp)
    a.attribute([100, 101])
    assert a.set_manual(100, " exp-7 ") == [(100, 1000.0, "exp-7")]
    assert a.set_manual(100, "exp-7") == []
    assert (a.attribute([100])[100].tag, a.attribute([100])[100].source) == ("exp-7", "manual")
    assert a.attribute([101])[101].source == "untagged"
    assert a.manual_tags() == {(100, 1000.0): "exp-7"}
    # PID 100 reused: the manual tag belonged to the old process.
    insp.procs[100] = fact(create_time=2000.0)
    assert a.attribute([100])[100].source == "untagged"


def test_set_manual_refuses_bad_tags_and_gone_processes():
    a = Attributor(FakeInspector({100: fact()}))
    with pytest.raises(ValueError, match="reserved"):
        a.set_manual(100, "(idle)")
    with pytest.raises(ValueError, match="no longer exists"):
        a.set_manual(999, "x")


def test_retag_moves_current_processes_of_a_tag():
    insp = FakeInspector(
        {
            100: fact(100, environ={"GPUTAB_TAG": "a"}),
            101: fact(101, environ={"GPUTAB_TAG": "a"}),
            102: fact(102, environ={"GPUTAB_TAG": "b"}),
            103: fact(103, environ={"GPUTAB_TAG": "a"}),
        }
    )
    a = Attributor(insp)
    a.attribute([100, 101, 102, 103])
    del insp.procs[103]  # exited: not a current process
    changed = a.retag("a", "renamed")
    assert sorted(changed) == [(100, 1000.0, "renamed"), (101, 1000.0, "renamed")]
    tags = {p: (i.tag, i.source) for p, i in a.attribute([100, 101, 102]).items()}
    assert tags == {100: ("renamed", "manual"), 101: ("renamed", "manual"), 102: ("b", "env")}
    assert a.retag("nothing-has-this", "x") == []
    with pytest.raises(ValueError):
        a.retag("renamed", "")


# -- tag validation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["llama3-lora", "exp:resnet", "slurm:48213", "team a / run 2", "é-ü-日本", "x" * 64])
def test_valid_tags(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 65, "at most 64"),
        ("a\nb", "U+000A"),
        ("a\tb", "U+0009"),
        ("a\x1bb", "U+001B"),
        ("zero\u200bwidth", "U+200B"),
        ("(idle)", "reserved"),
        ("(mine", "reserved"),
    ],
)
def test_invalid_tags(tag, reason):
    with pytest.raises(ValueError, match=reason.replace("+", r"\+")):
        validate_tag(tag)


def test_validate_tag_rejects_non_text():
    with pytest.raises(ValueError, match="text"):
        validate_tag(42)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100))
def test_validate_tag_fuzz(raw):
    try:
        tag = validate_tag(raw)
    except ValueError:
        return
    assert 1 <= len(tag) <= MAX_TAG_CHARS and tag.isprintable() and not tag.startswith("(")
    tag.encode("utf-8")  # no lone surrogates: it can be stored and exported


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_sanitize_tag_output_always_validates(raw):
    tag = sanitize_tag(raw)
    assert tag is None or validate_tag(tag) == tag


# -- redaction ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["python", "train.py", "--password", "hunter2"], "python train.py --password ***"),
        (["python", "train.py", "--token=abc"], "python train.py --token=***"),
        (["x", "--api-key", "k1"], "x --api-key ***"),
        (["x", "--wandb-api-key=6f1e9c"], "x --wandb-api-key=***"),
        (["x", "api_key=k2", "client_secret=s", "--auth", "u:p"], "x api_key=*** client_secret=*** --auth ***"),
        (
            ["env", "HF_TOKEN=abc", "AWS_SECRET_ACCESS_KEY=def", "PGPASSWORD=x"],
            "env HF_TOKEN=*** AWS_SECRET_ACCESS_KEY=*** PGPASSWORD=***",
        ),
        (["x", "--apiKey", "k"], "x --apiKey ***"),
        (["x", "hf_" + "a1B2" * 8], "x ***"),
        (["x", "--key=sk-proj-" + "Zz9" * 8], "x --key=***"),
        (["x", "ghp_" + "A" * 36], "x ***"),
        (["x", "AKIAIOSFODNN7EXAMPLE"], "x ***"),
        (["git", "clone", "https://alice:pw@github.com/a/b"], "git clone https://***@github.com/a/b"),
        (["x", "postgres://u:p@db:5432/x"], "x postgres://***@db:5432/x"),
        (["curl", "-H", "Authorization: Bearer abcdefgh12345"], "curl -H 'Authorization: Bearer ***'"),
        (["sh", "-c", "python t.py --token abc --lr 3"], "sh -c 'python t.py --token *** --lr 3'"),
        (["x", "--auth", "--verbose"], "x --auth --verbose"),
        (["x", "--password", "basic", "y"], "x --password *** y"),  # a scheme word after a flag is the secret
        (["curl", "-H", "Authorization:", "Bearer", "abc"], "curl -H Authorization: Bearer ***"),
    ],
)
def test_redaction(args, expected):
    assert redact_cmdline(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["python", "train.py", "--tokenizer", "llama", "--max-tokens", "512", "--password-file", "/run/pw"],
        ["python", "-m", "hf_hub", "sk-learn", "--author", "me", "--key", "loss"],
        ["python", "eval.py", "--suite", "mmlu"],
    ],
)
def test_redaction_keeps_ordinary_arguments(args):
    assert redact_cmdline(args) == " ".join(args)


def test_redaction_quotes_and_escapes():
    assert redact_cmdline(["echo", "a b", "it's", ""]) == "echo 'a b' 'it'\"'\"'s' ''"
    line = redact_cmdline(["python", "-c", "print(1)\nprint(2)", "\x1b[2J"])
    assert line == "python -c $'print(1)\\nprint(2)' $'\\x1b[2J'"
    assert line.isprintable()


def test_redaction_caps_length():
    assert len(redact_cmdline(["x" * 10_000])) <= 4096


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("--password", True),
        ("HF_TOKEN", True),
        ("wandb_api_key", True),
        ("accessToken", True),
        ("--auth", True),
        ("--tokenizer", False),
        ("max_tokens", False),
        ("--author", False),
        ("--key", False),
        ("token_budget", False),
    ],
)
def test_is_secret_name(name, secret):
    assert is_secret_name(name) is secret
