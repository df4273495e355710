"""Framework callbacks: the Trainer / Lightning callback protocols drive gputab.report (samples, tokens, progress).

``transformers`` installs without torch, and is in the frameworks extra: the real ``CallbackHandler`` of the
Trainer, with its ``DefaultFlowCallback`` deciding the logging steps, drives :class:`GputabCallback` with real
``TrainerState`` and ``TrainerControl`` objects (only ``TrainingArguments`` needs torch: a stand-in holds the
attributes the Trainer reads). Lightning needs torch, so its protocol test calls the callback as Lightning does, with
a stand-in ``Trainer``. ``gpu``-marked tests train a tiny real model with each framework where torch and a GPU are
present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run_script(code: str, spool: Path, **env) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GPUTAB_SPOOL": str(spool), **env},
    )
    assert r.returncode == 0, r.stderr
    return r


def spool_docs(spool: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(spool.glob("*.json"))] if spool.is_dir() else []


def test_importing_the_callbacks_imports_no_framework(tmp_path):
    out = run_script(
        """
        import sys, gputab, gputab.callbacks, gputab.callbacks.hf, gputab.callbacks.lightning
        print(",".join(m for m in sys.modules if m.split(".")[0] in ("transformers", "torch", "lightning",
                                                                     "pytorch_lightning")))
    """,
        tmp_path,
    )
    assert out.stdout.strip() == ""


HF = """
    from types import SimpleNamespace as NS
    from gputab.callbacks.hf import HFProgress
    args = NS(per_device_train_batch_size=8, gradient_accumulation_steps=4, world_size=2, logging_steps=10,
              process_index={rank})
    state = NS(global_step=0, max_steps=100, is_world_process_zero={rank} == 0, num_input_tokens_seen=0, epoch=0.0)
    cb = HFProgress(tag="hf-job")
    control = NS()
    for step in range(1, 96):
        state.global_step = step
        state.num_input_tokens_seen = step * 64 * 128
        if step % args.logging_steps == 0:
            cb.on_log(args, state, control, logs={{"loss": 1.0}})
    cb.on_train_end(args, state, control)
"""


def test_hf_trainer_protocol_reports_samples_tokens_and_progress(tmp_path):
    run_script(HF.format(rank=0), tmp_path / "spool")
    (doc,) = spool_docs(tmp_path / "spool")
    # 95 optimizer steps x (8 per device x 4 accumulation x 2 processes); tokens as the Trainer counted them.
    assert doc["counts"]["hf-job"] == [95 * 64, 95 * 64 * 128]
    assert doc["progress"]["hf-job"] == pytest.approx(0.95)


def test_hf_callback_reports_from_the_main_process_only(tmp_path):
    run_script(HF.format(rank=1), tmp_path / "spool")
    assert spool_docs(tmp_path / "spool") == []


REAL_HF = """
    from types import SimpleNamespace as NS
    from transformers import TrainerControl, TrainerState
    from transformers.trainer_callback import CallbackHandler, DefaultFlowCallback
    from gputab.callbacks.hf import GputabCallback

    logged = []

    class Watch(DefaultFlowCallback):
        def on_log(self, args, state, control, **kwargs):
            logged.append(state.global_step)

    # What the Trainer's loop does around each optimizer step (transformers' own dispatch and flow callback);
    # TrainingArguments needs torch, so a stand-in holds the attributes the handler and callbacks read.
    args = NS(per_device_train_batch_size=8, gradient_accumulation_steps=4, world_size=2, process_index={rank},
              logging_strategy="steps", logging_steps=10, logging_first_step=False, eval_strategy="no",
              eval_steps=None, eval_delay=0, save_strategy="no", save_steps=None)
    state = TrainerState(max_steps=100, is_world_process_zero={rank} == 0, is_local_process_zero={rank} == 0,
                         logging_steps=10)
    handler = CallbackHandler([Watch, GputabCallback(tag="hf-real")], None, None, None, None)
    control = handler.on_train_begin(args, state, TrainerControl())
    for step in range(1, 96):
        control = handler.on_step_begin(args, state, control)
        state.global_step = step
        state.num_input_tokens_seen = step * 64 * 128
        control = handler.on_step_end(args, state, control)
        if control.should_log:
            control = handler.on_log(args, state, control, logs={{"loss": 1.0}})
            control.should_log = False
    handler.on_train_end(args, state, control)
    assert logged == list(range(10, 96, 10)), logged
"""


@pytest.mark.slow
def test_the_real_trainer_dispatch_drives_the_callback(tmp_path):
    """transformers' CallbackHandler and DefaultFlowCallback (no torch needed) call GputabCallback at each logging
    step: what the spool holds is what the Trainer trained, and only the main process reports."""
    pytest.importorskip(
        "transformers", reason="transformers is in the frameworks extra: pip install -e '.[frameworks]'"
    )
    run_script(REAL_HF.format(rank=0), tmp_path / "spool")
    (doc,) = spool_docs(tmp_path / "spool")
    assert doc["counts"]["hf-real"] == [95 * 64, 95 * 64 * 128]
    assert doc["progress"]["hf-real"] == pytest.approx(0.95)
    run_script(REAL_HF.format(rank=1), tmp_path / "other")
    assert spool_docs(tmp_path / "other") == []


def test_hf_callback_without_transformers_says_how_to_install(tmp_path):
    # sys.modules[name] = None makes Python's import fail as it does where the package is not installed.
    code = "import sys; sys.modules['transformers'] = None\nfrom gputab.callbacks.hf import GputabCallback"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "pip install 'gputab[hf]'" in r.stderr


LIGHTNING = """
    from types import SimpleNamespace as NS
    from gputab.callbacks.lightning import LightningProgress
    class Tensor:
        def __init__(self, *shape): self.shape = shape
    trainer = NS(global_step=0, is_global_zero={zero}, world_size=2, log_every_n_steps=5,
                 estimated_stepping_batches=40)
    cb = LightningProgress(tag="pl-job")
    for i in range(30):
        trainer.global_step = i + 1
        batch = (Tensor(16, 3, 32, 32), Tensor(16)) if i % 2 else {{"input_ids": Tensor(16, 128)}}
        cb.on_train_batch_end(trainer, None, None, batch, i)
    cb.on_train_end(trainer, None)
"""


def test_lightning_protocol_reports_samples_and_progress(tmp_path):
    run_script(LIGHTNING.format(zero=True), tmp_path / "spool")
    (doc,) = spool_docs(tmp_path / "spool")
    assert doc["counts"]["pl-job"] == [30 * 16 * 2, 0]
    assert doc["progress"]["pl-job"] == pytest.approx(30 / 40)
    run_script(LIGHTNING.format(zero=False), tmp_path / "other")
    assert spool_docs(tmp_path / "other") == []


def needs_a_gpu_and(framework: str) -> None:
    pytest.importorskip(framework)
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


@pytest.mark.gpu
def test_a_real_trainer_on_a_gpu_reports_what_it_trained(tmp_path):
    """A tiny model trained by the real Trainer with the callback: the spool holds its samples and progress."""
    needs_a_gpu_and("transformers")
    run_script(
        """
        import torch
        from torch import nn
        from transformers import Trainer, TrainingArguments
        from gputab.callbacks.hf import GputabCallback

        class Tiny(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(8, 1)
            def forward(self, x, labels=None):
                out = self.lin(x).squeeze(-1)
                return {"loss": nn.functional.mse_loss(out, labels), "logits": out}

        data = [{"x": torch.randn(8), "labels": torch.randn(())} for _ in range(256)]
        args = TrainingArguments(output_dir=OUTPUT_DIR, per_device_train_batch_size=16, gradient_accumulation_steps=2,
                                 num_train_epochs=2, logging_steps=2, report_to=[], save_strategy="no")
        Trainer(model=Tiny(), args=args, train_dataset=data, callbacks=[GputabCallback(tag="real-hf")]).train()
    """.replace("OUTPUT_DIR", repr(str(tmp_path / "out"))),
        tmp_path / "spool",
    )
    (doc,) = spool_docs(tmp_path / "spool")
    assert doc["counts"]["real-hf"][0] == 2 * 256  # 2 epochs of 256 samples (16 x 2 accumulation, 8 steps/epoch)
    assert doc["progress"]["real-hf"] == 1.0


@pytest.mark.gpu
def test_a_real_lightning_run_on_a_gpu_reports_what_it_trained(tmp_path):
    """A tiny LightningModule trained by the real Lightning Trainer with the callback on one GPU."""
    needs_a_gpu_and("lightning")
    run_script(
        """
        import lightning as L
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset
        from gputab.callbacks.lightning import GputabCallback

        class Tiny(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(8, 1)
            def training_step(self, batch, batch_idx):
                x, y = batch
                return nn.functional.mse_loss(self.lin(x).squeeze(-1), y)
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.01)

        data = DataLoader(TensorDataset(torch.randn(256, 8), torch.randn(256)), batch_size=16)
        trainer = L.Trainer(accelerator="gpu", devices=1, max_epochs=2, log_every_n_steps=2, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, default_root_dir=ROOT,
                            callbacks=[GputabCallback(tag="real-pl")])
        trainer.fit(Tiny(), data)
    """.replace("ROOT", repr(str(tmp_path / "out"))),
        tmp_path / "spool",
    )
    (doc,) = spool_docs(tmp_path / "spool")
    assert doc["counts"]["real-pl"][0] == 2 * 256  # 2 epochs of 256 samples, batches of 16
    assert doc["progress"]["real-pl"] == pytest.approx(1.0)
