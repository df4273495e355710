"""A PyTorch Lightning callback: samples and progress, reported to gputab.

Two lines in a training script::

    from gputab.callbacks.lightning import GputabCallback
    trainer = L.Trainer(..., callbacks=[GputabCallback()])

Every ``log_every_n_steps`` optimizer steps and at the end of training, on the global-zero process only, it
reports the samples of the batches since the last report x world size (a batch's size is the ``batch_size``
given, else the first dimension of the batch or of its first tensor) and the progress
``global_step / estimated_stepping_batches`` (Lightning's own total, from ``max_steps`` or the epochs).

The logic (:class:`LightningProgress`) needs nothing from Lightning; :class:`GputabCallback` is it mixed into
``lightning.pytorch.Callback`` (or ``pytorch_lightning.Callback``), made when first asked for.
"""

from __future__ import annotations

import math
from typing import Any

from gputab.report import report

__all__ = ["GputabCallback", "LightningProgress"]  # noqa: F822 (made by __getattr__)


def batch_size_of(batch: Any) -> int:
    """Samples in a batch: the first dimension of a tensor, or of the first tensor in a list, tuple or dict."""
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size_of(batch[0])
    return 0


class LightningProgress:
    """What :class:`GputabCallback` reports.

    Args:
        tag: the job (default: ``$GPUTAB_TAG``).
        batch_size: samples per batch on one process (default: read from each batch).
    """

    def __init__(self, tag: str | None = None, batch_size: int | None = None) -> None:
        self.tag = tag
        self.batch_size = batch_size
        self._pending = 0
        self._last_logged = -1

    def _report(self, trainer: Any) -> None:
        step = int(getattr(trainer, "global_step", 0) or 0)
        total = getattr(trainer, "estimated_stepping_batches", None)
        kwargs: dict[str, Any] = {}
        if isinstance(total, (int, float)) and math.isfinite(total) and total > 0:
            kwargs["progress"] = min(step / total, 1.0)
        report(samples=self._pending, tag=self.tag, **kwargs)
        self._pending = 0

    # -- the Callback protocol --------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Count the batch; at a logging step report (global-zero process only)."""
        if not getattr(trainer, "is_global_zero", True):
            return
        size = self.batch_size if self.batch_size is not None else batch_size_of(batch)
        self._pending += size * max(1, int(getattr(trainer, "world_size", 1) or 1))
        step = int(getattr(trainer, "global_step", 0) or 0)
        every = max(1, int(getattr(trainer, "log_every_n_steps", 50) or 50))
        if step % every == 0 and step != self._last_logged:
            self._last_logged = step
            self._report(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not getattr(trainer, "is_global_zero", True):
            return
        self._report(trainer)
        from gputab.report import flush

        flush()


def __getattr__(name: str) -> Any:
    if name != "GputabCallback":
        raise AttributeError(name)
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError as exc:
            raise ImportError(
                "gputab.callbacks.lightning.GputabCallback needs Lightning: pip install 'gputab[lightning]'"
            ) from exc

    class GputabCallback(LightningProgress, Callback):
        """Reports samples and progress to gputab at each logging step (see the module docstring)."""

    globals()["GputabCallback"] = GputabCallback
    return GputabCallback
