"""Label values of the Prometheus series (:mod:`gputab.publish.metrics`): bounded job tags, and tokens by kind.

A time-series database pays for every distinct label value, so untagged processes share one tag label and the tags
beyond a cap are folded into ``other``; each tag's label is decided once and never changes.
"""

from __future__ import annotations

import threading

from gputab.attribution import validate_tag
from gputab.cost.buckets import SPECIAL_TAGS
from gputab.cost.totals import reported_tokens

UNTAGGED = "untagged"
"""Tag label of every untagged process (their own tags name users and programs: unbounded)."""
OTHER = "other"
"""Tag label of the tags beyond the series cap."""
DEFAULT_MAX_TAGS = 100

HOST_LABEL = "host"
"""The host label: the session's host name (the demo box's, or this machine's)."""
GPU_LABELS = ("gpu", "UUID", "modelName", HOST_LABEL)
JOB_LABELS = ("tag", HOST_LABEL)


class TagLabels:
    """Maps job tags to bounded label values. Sticky: a tag's label never changes for the life of the exporter.

    Args:
        max_tags: distinct real tags given their own series; later ones become ``other``.
    """

    def __init__(self, max_tags: int = DEFAULT_MAX_TAGS) -> None:
        self.max_tags = max_tags
        self._own: set[str] = set()
        self._folded: set[str] = set()
        self._lock = threading.Lock()

    @property
    def folded(self) -> int:
        """How many distinct tags were folded into ``other``."""
        return len(self._folded)

    def label(self, tag: str) -> str:
        if tag in SPECIAL_TAGS:
            return tag
        if tag.startswith("untagged:") or tag == UNTAGGED:
            return UNTAGGED
        with self._lock:
            if tag in self._own:
                return tag
            if tag in self._folded:
                return OTHER
            try:
                ok = validate_tag(tag) == tag and tag != OTHER
            except ValueError:
                ok = False
            if ok and len(self._own) < self.max_tags:
                self._own.add(tag)
                return tag
            self._folded.add(tag)
            return OTHER


TOKEN_KINDS = ("prompt", "generated", "reported")
"""The ``kind`` label of ``gputab_job_tokens_total``."""
_TOKEN_SUMS = {**dict.fromkeys(TOKEN_KINDS, 0.0), **{f"has_{k}": 0.0 for k in TOKEN_KINDS}}


def token_kinds(job: dict) -> dict[str, float]:
    """A job's tokens by kind (only the kinds it has): its servers' prompt and generated tokens, and the rest of
    its ``tokens`` as reported (a report carries no kind). They sum to ``tokens``."""
    if job.get("tokens") is None:
        return {}
    out = {k: float(job[f"{k}_tokens"]) for k in ("prompt", "generated") if job.get(f"{k}_tokens") is not None}
    reported = reported_tokens(job["tokens"], job.get("prompt_tokens"), job.get("generated_tokens"))
    if reported > 0 or not out:
        out["reported"] = float(reported)
    return out
