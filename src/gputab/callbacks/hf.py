"""A Hugging Face ``transformers`` Trainer callback: samples, tokens and progress, reported to gputab.

Two lines in a training script::

    from gputab.callbacks.hf import GputabCallback
    trainer = Trainer(..., callbacks=[GputabCallback()])

At every logging step (``logging_steps``) and at the end of training, on the main process only, it reports:

- samples: optimizer steps since the last report x per-device batch size x gradient accumulation x world size;
- tokens: the growth of ``state.num_input_tokens_seen`` when the Trainer counts them
  (``include_num_input_tokens_seen=True``);
- progress: ``global_step / max_steps`` (the Trainer's own total, from epochs or ``max_steps``), and the total of
  samples that makes.

The reporting logic (:class:`HFProgress`) needs nothing from ``transformers``; :class:`GputabCallback` is it
mixed into ``transformers.TrainerCallback`` and is made when first asked for, so ``import gputab.callbacks.hf``
works (and is cheap) where ``transformers`` is not installed.
"""

from __future__ import annotations

from typing import Any

from gputab.report import report

__all__ = ["GputabCallback", "HFProgress"]  # noqa: F822 (GputabCallback: made by __getattr__)


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


class HFProgress:
    """What :class:`GputabCallback` reports, from the ``TrainingArguments`` and ``TrainerState`` it is given.

    Args:
        tag: the job (default: ``$GPUTAB_TAG``, else the recorder tags it like the process's GPU work).
    """

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag
        self._step = 0
        self._tokens = 0

    @staticmethod
    def samples_per_step(args: Any) -> int:
        """Samples in one optimizer step across all processes: batch size x accumulation x world size."""
        batch = _int(getattr(args, "per_device_train_batch_size", 0))
        accumulation = max(1, _int(getattr(args, "gradient_accumulation_steps", 1), 1))
        world = max(1, _int(getattr(args, "world_size", 1), 1))
        return batch * accumulation * world

    @staticmethod
    def is_main(args: Any, state: Any) -> bool:
        main = getattr(state, "is_world_process_zero", None)
        if isinstance(main, bool):
            return main
        return _int(getattr(args, "process_index", 0)) == 0

    def report(self, args: Any, state: Any) -> None:
        """Report what grew since the last call (the main process only)."""
        if not self.is_main(args, state):
            return
        step = _int(getattr(state, "global_step", 0))
        if step < self._step:
            self._step = self._tokens = 0  # a new run in the same process
        per_step = self.samples_per_step(args)
        samples = (step - self._step) * per_step
        seen = _int(getattr(state, "num_input_tokens_seen", 0))
        tokens = max(0, seen - self._tokens)
        max_steps = _int(getattr(state, "max_steps", 0))
        kwargs: dict[str, Any] = {}
        if max_steps > 0:
            kwargs["progress"] = min(step / max_steps, 1.0)
            if per_step:
                kwargs["total_samples"] = max_steps * per_step
        report(samples=samples, tokens=tokens, tag=self.tag, **kwargs)
        self._step, self._tokens = step, max(seen, self._tokens)

    # -- the TrainerCallback protocol -------------------------------------------------------------------------
    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Called by the Trainer at each logging step."""
        self.report(args, state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The last steps (after the last logging step), then the counts are written at once."""
        self.report(args, state)
        from gputab.report import flush

        flush()


def __getattr__(name: str) -> Any:
    if name != "GputabCallback":
        raise AttributeError(name)
    try:
        from transformers import TrainerCallback
    except ImportError as exc:
        raise ImportError("gputab.callbacks.hf.GputabCallback needs transformers: pip install 'gputab[hf]'") from exc

    class GputabCallback(HFProgress, TrainerCallback):
        """Reports samples, tokens and progress to gputab at each logging step (see the module docstring)."""

    globals()["GputabCallback"] = GputabCallback
    return GputabCallback
