"""gputab: see what GPUs cost while they work.

Importing this package is cheap on purpose: training scripts do ``import gputab`` to call
:func:`gputab.report`, and must not pay for the TUI, the store or NVML.
"""

from gputab import startup as _startup

_startup.install()  # first: a Ctrl-C while the command line loads exits quietly (only when gputab is the program)

__version__ = "0.1.0"

__all__ = ["__version__", "report"]


def report(
    samples: int = 0,
    tokens: int = 0,
    tag: str | None = None,
    *,
    total_samples: int | None = None,
    total_tokens: int | None = None,
    progress: float | None = None,
) -> None:
    """Add processed ``samples`` and ``tokens`` to this process's job, and its progress (see :mod:`gputab.report`)."""
    from gputab.report import report as _report

    _report(
        samples=samples,
        tokens=tokens,
        tag=tag,
        total_samples=total_samples,
        total_tokens=total_tokens,
        progress=progress,
    )
