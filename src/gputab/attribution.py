"""Attribution: which job is a GPU process working for? PID -> :class:`ProcessInfo` (tag, and why).

Rules, first match wins:

1. ``GPUTAB_TAG`` in the process's environment (source ``env``), or else in its nearest ancestor's
   (``inherited``: dataloader workers, torchrun children, a child started with a cleaned environment).
2. A configured environment key (default ``SLURM_JOB_ID`` -> ``slurm:<id>``), in the process or its ancestors
   (``key``).
3. A command-line rule from the config, its tag template filled from the match groups (``rule``).
4. The container in the process's cgroup: docker, containerd, CRI-O, podman, Kubernetes (``container``).
5. ``untagged:<user>/<process name>`` (``untagged``), or ``no_permission`` when rules 1-2 could not be tried
   because this user may not read the process's environment (run gputab as root, or tag by a rule).

A GPU process NVML lists by a host PID this container cannot see is charged to ``unattributed:host-pid``
(``hidden``; see :mod:`gputab.sampling.containers`). A user's manual tag (``manual``) overrides all of them.
A process whose environment cannot be read (another user's, without root) skips rules 1-2 rather than borrowing
an ancestor's tag it might have overridden.

Only tag variables leave this module: the environment is read, searched and dropped, never stored or returned.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from gputab.config.settings import AttributionConfig
from gputab.redaction import redact_cmdline
from gputab.sampling.backend import ProcessFacts, ProcessInspector
from gputab.sampling.containers import UNATTRIBUTED

__all__ = [
    "TAG_ENV",
    "MAX_TAG_CHARS",
    "ProcessInfo",
    "Attributor",
    "validate_tag",
    "sanitize_tag",
    "container_id",
    "redact_cmdline",
]

log = logging.getLogger(__name__)

TAG_ENV = "GPUTAB_TAG"
MAX_TAG_CHARS = 64
MAX_ANCESTORS = 32
"""How far up the parent chain tags are looked for; deeper chains are not real launchers, and it bounds loops."""
EVICT_AFTER_CALLS = 300
"""A cached process not asked about for this many :meth:`Attributor.attribute` calls is forgotten."""

Source = Literal[
    "env", "inherited", "key", "rule", "container", "untagged", "no_permission", "manual", "gone", "hidden"
]


@dataclass(frozen=True)
class ProcessInfo:
    """Who a GPU process is and which job it is charged to.

    ``source`` says which rule gave ``tag``. ``gone`` means the process no longer exists: its tag is the last
    one it was given, or ``untagged:?/pid<N>`` if it was never seen alive (its GPU time is still charged).
    """

    pid: int
    create_time: float | None
    """Start time (Unix seconds); with ``pid`` it names the process. None when ``gone`` and never seen."""
    user: str | None
    name: str
    cmdline: str
    """Redacted command line (see :func:`gputab.redaction.redact_cmdline`)."""
    tag: str
    source: Source


def validate_tag(tag: str) -> str:
    """Check a tag a user typed (``gputab run --tag``, the TUI) and return it without surrounding spaces.

    A tag becomes a database key, a CSV cell and a Prometheus label, so it must be 1 to 64 printable
    characters. Tags starting with ``(`` are reserved for gputab's own rows, ``(idle)`` and ``(unobserved)``.

    Raises:
        ValueError: with a reason the user can act on.
    """
    if not isinstance(tag, str):
        raise ValueError(f"a tag must be text, got {type(tag).__name__}")
    tag = tag.strip()
    if not tag:
        raise ValueError("the tag is empty; give 1 to 64 characters, e.g. llama3-lora")
    if len(tag) > MAX_TAG_CHARS:
        raise ValueError(f"the tag is {len(tag)} characters long; use at most {MAX_TAG_CHARS}")
    for i, ch in enumerate(tag):
        if not ch.isprintable():
            raise ValueError(
                f"the tag contains a control or invisible character (U+{ord(ch):04X} at position "
                f"{i + 1}); use letters, digits, spaces and punctuation"
            )
    if tag.startswith("("):
        raise ValueError(
            "tags starting with '(' are reserved for gputab's own rows such as (idle); "
            "start the tag with another character"
        )
    return tag


def sanitize_tag(raw: str) -> str | None:
    """Turn a tag found on the host (an environment value, a rule's output) into a valid tag, or None if empty.

    Unlike :func:`validate_tag` it does not refuse: nobody is there to read a reason. Control and invisible
    characters become ``_``, a leading ``(`` becomes ``_``, and the result is cut to 64 characters.
    """
    cleaned = "".join(ch if ch.isprintable() else "_" for ch in raw).strip()
    if cleaned.startswith("("):
        cleaned = "_" + cleaned[1:]
    cleaned = cleaned[:MAX_TAG_CHARS].rstrip()
    return cleaned or None


# A container id is 64 hex digits in a cgroup path component: `/docker/<id>`, `docker-<id>.scope`,
# `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`, `/kubepods/burstable/pod<uid>/<id>`.
_CONTAINER_ID = re.compile(r"(?:^|[/\-:])([0-9a-f]{64})(?:\.scope)?(?=/|$)")


def container_id(cgroup: str | None) -> str | None:
    """The first 12 hex digits of the container a process runs in, from its /proc/PID/cgroup text, or None.

    The innermost container wins (docker-in-docker). A systemd user or system slice is no container.
    """
    if not cgroup:
        return None
    for line in cgroup.splitlines():
        # `hierarchy-ID:controllers:path`; the path may itself contain ':' (it does not in practice).
        path = line.split(":", 2)[-1]
        ids = _CONTAINER_ID.findall(path)
        if ids:
            return ids[-1][:12]
    return None


def _printable(text: str) -> str:
    """Host text (process names are settable by the process) made safe to show: control characters -> ``?``."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


@dataclass
class _Entry:
    info: ProcessInfo
    last_call: int


class Attributor:
    """Gives each GPU PID a tag by the rules of this module, caching the answer per (pid, create_time).

    Safe to call from the recorder thread while the TUI sets manual tags.

    Args:
        inspector: explains PIDs (the backend's). If it has a ``create_time(pid)`` method, that cheap check is
            used to revalidate cached PIDs each call; otherwise ``facts(pid)`` is.
        config: environment keys and command-line rules.
    """

    def __init__(self, inspector: ProcessInspector, config: AttributionConfig | None = None) -> None:
        self._inspector = inspector
        self._config = config or AttributionConfig()
        try:
            self._rules = [(re.compile(r.pattern), r.tag) for r in self._config.rules]
        except re.error as exc:
            raise ValueError(f"invalid attribution rule pattern: {exc}") from None
        self._tag_keys = (TAG_ENV, *self._config.env_keys)
        self._cheap_create_time = getattr(inspector, "create_time", None)
        self._hidden = getattr(inspector, "hidden", None)
        self._cache: dict[int, _Entry] = {}
        self._manual: dict[tuple[int, float], str] = {}
        self._calls = 0
        self._bad_rules: set[int] = set()
        self._lock = threading.RLock()

    # -- attribution -------------------------------------------------------------------------------------------

    def attribute(self, pids: Iterable[int]) -> dict[int, ProcessInfo]:
        """Tag every PID in ``pids``; never raises for a process that vanished or cannot be read."""
        with self._lock:
            self._calls += 1
            ancestors: dict[int, tuple[float, int | None, dict[str, str] | None] | None] = {}
            result = {pid: self._one(pid, ancestors) for pid in dict.fromkeys(pids)}
            self._evict()
            return result

    def _one(self, pid: int, ancestors: dict) -> ProcessInfo:
        if self._hidden is not None and self._hidden(pid):
            # A host PID this container cannot see (a local process may even have the same number): its owner
            # is unknown, so it is no user's untagged job.
            return ProcessInfo(pid, None, None, "?", "", UNATTRIBUTED, "hidden")
        entry = self._cache.get(pid)
        facts: ProcessFacts | None = None
        if self._cheap_create_time is not None:
            ct = self._cheap_create_time(pid)
        else:
            facts = self._inspector.facts(pid)
            ct = None if facts is None else facts.create_time
        if ct is None:
            # Exited since NVML listed it: charge the job it belonged to if we knew it, else a placeholder.
            if entry is not None:
                entry.last_call = self._calls
                return replace(entry.info, source="gone")
            return ProcessInfo(pid, None, None, "?", "", f"untagged:?/pid{pid}", "gone")
        if entry is not None and entry.info.create_time == ct:
            entry.last_call = self._calls
            return entry.info
        if facts is None:
            facts = self._inspector.facts(pid)
            if facts is None:
                return ProcessInfo(pid, None, None, "?", "", f"untagged:?/pid{pid}", "gone")
        info = self._derive(facts, ancestors)
        self._cache[pid] = _Entry(info, self._calls)
        return info

    def _derive(self, facts: ProcessFacts, ancestors: dict) -> ProcessInfo:
        def info(tag: str, source: Source) -> ProcessInfo:
            return ProcessInfo(
                facts.pid,
                facts.create_time,
                facts.user,
                _printable(facts.name),
                redact_cmdline(facts.cmdline),
                tag,
                source,
            )

        manual = self._manual.get((facts.pid, facts.create_time))
        if manual is not None:
            return info(manual, "manual")
        if facts.environ is not None:
            chain = [self._tag_vars(facts.environ), *self._ancestor_vars(facts, ancestors)]
            for depth, tag_vars in enumerate(chain):
                tag = self._from_env(tag_vars, TAG_ENV, "{}", facts)
                if tag:
                    return info(tag, "env" if depth == 0 else "inherited")
            for tag_vars in chain:
                for key, template in self._config.env_keys.items():
                    tag = self._from_env(tag_vars, key, template, facts)
                    if tag:
                        return info(tag, "key")
        else:
            log.debug("pid %s: environment unreadable; tag from command line, cgroup or user", facts.pid)
        tag = self._from_rules(facts.cmdline)
        if tag:
            return info(tag, "rule")
        cid = container_id(facts.cgroup)
        if cid:
            return info(f"container:{cid}", "container")
        untagged = sanitize_tag(f"untagged:{facts.user or '?'}/{facts.name or '?'}")
        return info(
            untagged or f"untagged:?/pid{facts.pid}",
            "no_permission" if facts.environ is None and facts.environ_denied else "untagged",
        )

    def _tag_vars(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The tag variables of an environment; the rest of it is dropped here."""
        return {k: environ[k] for k in self._tag_keys if k in environ}

    def _ancestor_vars(self, facts: ProcessFacts, ancestors: dict) -> list[dict[str, str]]:
        """Tag variables of the process's ancestors, nearest first, up to the first unreadable one.

        The walk stops at an ancestor whose environment cannot be read: a tag further up might have been
        replaced there, so using it would be a guess. ``ancestors`` memoises walks within one call, so the
        eight workers of one launcher cost one walk.
        """
        out: list[dict[str, str]] = []
        seen = {facts.pid}
        ppid, child_start = facts.ppid, facts.create_time
        while ppid is not None and ppid > 0 and ppid not in seen and len(out) < MAX_ANCESTORS:
            seen.add(ppid)
            if ppid not in ancestors:
                parent = self._inspector.facts(ppid)
                ancestors[ppid] = (
                    None
                    if parent is None
                    else (
                        parent.create_time,
                        parent.ppid,
                        None if parent.environ is None else self._tag_vars(parent.environ),
                    )
                )
            node = ancestors[ppid]
            # A "parent" younger than its child is a reused PID (the real parent exited), not an ancestor.
            if node is None or node[2] is None or node[0] > child_start:
                break
            out.append(node[2])
            ppid, child_start = node[1], node[0]
        return out

    def _from_env(self, tag_vars: Mapping[str, str], key: str, template: str, facts: ProcessFacts) -> str | None:
        value = tag_vars.get(key)
        if value is None or not value.strip():
            return None
        raw = template.replace("{}", value.strip())
        tag = sanitize_tag(raw)
        if tag != raw:
            log.warning("pid %s: %s=%r is not a valid tag; using %r", facts.pid, key, value[:80], tag)
        return tag

    def _from_rules(self, cmdline: tuple[str, ...]) -> str | None:
        text = " ".join(cmdline)
        for i, (pattern, template) in enumerate(self._rules):
            m = pattern.search(text)
            if not m:
                continue
            try:
                tag = sanitize_tag(m.expand(template))
            except (re.error, IndexError) as exc:
                if i not in self._bad_rules:  # once per rule, not once per process per tick
                    self._bad_rules.add(i)
                    log.warning(
                        "attribution rule %r -> %r: bad tag template (%s); rule skipped", pattern.pattern, template, exc
                    )
                continue
            if tag:
                return tag
        return None

    def _evict(self) -> None:
        """Forget processes not asked about for a while, and manual tags of processes that no longer exist."""
        stale = [pid for pid, e in self._cache.items() if self._calls - e.last_call >= EVICT_AFTER_CALLS]
        for pid in stale:
            del self._cache[pid]
        if stale:
            self._manual = {k: t for k, t in self._manual.items() if k[0] in self._cache or self._alive(*k)}

    def _alive(self, pid: int, create_time: float) -> bool:
        if self._cheap_create_time is not None:
            return self._cheap_create_time(pid) == create_time
        facts = self._inspector.facts(pid)
        return facts is not None and facts.create_time == create_time

    # -- manual tags -------------------------------------------------------------------------------------------

    def set_manual(self, pid: int, tag: str) -> list[tuple[int, float, str]]:
        """Tag the running process ``pid`` by hand (overrides every rule for as long as it runs).

        Returns:
            ``[(pid, create_time, tag)]``, or ``[]`` if it already had that manual tag.

        Raises:
            ValueError: the tag is invalid, or the process no longer exists.
        """
        tag = validate_tag(tag)
        with self._lock:
            info = self._current(pid)
            if info is None:
                raise ValueError(f"process {pid} no longer exists; nothing to tag")
            return self._apply_manual(info, tag)

    def retag(self, old_tag: str, new_tag: str) -> list[tuple[int, float, str]]:
        """Move every current process tagged ``old_tag`` to ``new_tag`` (tagging a whole job by hand).

        "Current" means seen by :meth:`attribute` recently and still running; processes started later follow
        the rules again.

        Returns:
            ``(pid, create_time, new_tag)`` for each process changed.

        Raises:
            ValueError: ``new_tag`` is invalid.
        """
        new_tag = validate_tag(new_tag)
        changed: list[tuple[int, float, str]] = []
        with self._lock:
            for pid, entry in list(self._cache.items()):
                info = entry.info
                if info.tag != old_tag or info.create_time is None or not self._alive(pid, info.create_time):
                    continue
                changed += self._apply_manual(info, new_tag)
        return changed

    def manual_tags(self) -> dict[tuple[int, float], str]:
        """Manual tags still in force, by (pid, create_time)."""
        with self._lock:
            return dict(self._manual)

    def _current(self, pid: int) -> ProcessInfo | None:
        """The cached info of a live ``pid`` (attributing it now if needed), or None if it is gone."""
        info = self._one(pid, {})
        return None if info.source == "gone" else info

    def _apply_manual(self, info: ProcessInfo, tag: str) -> list[tuple[int, float, str]]:
        assert info.create_time is not None
        if info.source == "manual" and info.tag == tag:
            return []
        self._manual[(info.pid, info.create_time)] = tag
        self._cache[info.pid] = _Entry(replace(info, tag=tag, source="manual"), self._calls)
        return [(info.pid, info.create_time, tag)]
