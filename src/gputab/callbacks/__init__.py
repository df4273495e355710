"""Training-framework callbacks that call :func:`gputab.report` for you (docs/forecast.md).

- :mod:`gputab.callbacks.hf`: a Hugging Face ``transformers`` ``TrainerCallback`` (``pip install 'gputab[hf]'``).
- :mod:`gputab.callbacks.lightning`: a PyTorch Lightning ``Callback`` (``pip install 'gputab[lightning]'``).

Importing this package imports neither framework; each module imports its own when it is imported.
"""
