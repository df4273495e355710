"""Non-root: gputab run by an ordinary user cannot read other users' process environments, and says so.

Real processes and a real second user: the attributor runs in a subprocess switched to ``nobody`` (os.setuid)
and looks at a root-owned process started with a tag in its environment.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

import pytest

from gputab.tui.widgets.processes import SOURCE_LABELS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to a second user (nobody)")

# The interpreter lives under root's home here: the subprocess imports as root, then drops to the user for good.
_BECOME = r"""
import ctypes, os, sys
uid, gid = int(sys.argv.pop(1)), int(sys.argv.pop(1))
if uid >= 0:
    os.setgroups([]); os.setgid(gid); os.setuid(uid)
    # A process that changed its uid is not dumpable, which makes its /proc files root's; an exec would reset
    # that, as it does for every process a user starts: do the same by hand (PR_SET_DUMPABLE = 4).
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
"""
_ATTRIBUTE = (
    r"""
import json, sys
from gputab.attribution import Attributor
from gputab.sampling.host import HostInspector
"""
    + _BECOME
    + r"""
infos = Attributor(HostInspector()).attribute(int(a) for a in sys.argv[1:])
print(json.dumps({pid: [i.tag, i.source, i.user] for pid, i in infos.items()}))
"""
)


def _ids(user: pwd.struct_passwd | None) -> list[str]:
    return ["-1", "-1"] if user is None else [str(user.pw_uid), str(user.pw_gid)]


def _attribute(pids: list[int], user: pwd.struct_passwd | None) -> dict[str, list]:
    out = subprocess.run(
        [sys.executable, "-c", _ATTRIBUTE, *_ids(user), *map(str, pids)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "GPUTAB_TAG": ""},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")


def _sleeper(tag: str, user: pwd.struct_passwd | None = None) -> subprocess.Popen:
    env = {**os.environ, "GPUTAB_TAG": tag}
    return subprocess.Popen(
        [sys.executable, "-c", _BECOME + "import time; time.sleep(60)", *_ids(user)], env=env, cwd="/"
    )


def test_another_users_process_says_no_permission(nobody):
    root_job = _sleeper("root-secret-run")
    own_job = _sleeper("nobody-run", nobody)
    try:
        seen = _attribute([root_job.pid, own_job.pid], nobody)
        tag, source, user = seen[str(root_job.pid)]
        assert source == "no_permission"
        assert tag.startswith("untagged:root/") and "root-secret-run" not in tag
        assert user == "root"
        # The user's own process is read as usual: the reason is permission, not a broken inspector.
        assert seen[str(own_job.pid)][:2] == ["nobody-run", "env"]
        # Root reads both environments: what root adds.
        as_root = _attribute([root_job.pid, own_job.pid], None)
        assert as_root[str(root_job.pid)][:2] == ["root-secret-run", "env"]
    finally:
        for p in (root_job, own_job):
            p.kill()
            p.wait()


def test_a_rule_still_tags_what_the_environment_cannot(nobody):
    """Tagging by rule works without root: the command line is world-readable."""
    code = (
        r"""
import json, sys
from gputab.attribution import Attributor
from gputab.config.settings import AttributionConfig, TagRule
from gputab.sampling.host import HostInspector
"""
        + _BECOME
        + r"""
cfg = AttributionConfig(rules=[TagRule(pattern=r"sleep\((\d+)\)", tag=r"sleeper-\1")])
info = Attributor(HostInspector(), cfg).attribute([int(sys.argv[1])])[int(sys.argv[1])]
print(json.dumps([info.tag, info.source]))
"""
    )
    job = _sleeper("root-secret-run")
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, *_ids(nobody), str(job.pid)],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == ["sleeper-60", "rule"]
    finally:
        job.kill()
        job.wait()


def test_the_how_column_names_the_reason():
    assert SOURCE_LABELS["no_permission"] == "untagged (no permission)"
