"""Lightning callbacks of ``nvs train``: :class:`Exporter` (preview grids of each validation) and
:class:`SpeedMonitor` (throughput and peak GPU memory of a run)."""

from __future__ import annotations

import lightning as L
import torch


class Exporter(L.Callback):
    """Preview grid (cond / prediction / target rows) of each validation, rank 0 only.

    At module level (not built inside a function) so ``ddp_spawn`` can pickle the trainer.
    """

    def __init__(self, out):
        self.out = out

    def on_validation_epoch_end(self, trainer, pl_module):
        imgs = getattr(pl_module, "val_images", None)
        if imgs is None or trainer.global_rank != 0:
            return
        from ..io.images import save_image
        from ..io.video import contact_sheet

        rows = [((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).float().numpy() for x in imgs]
        tiles = [r[i] for i in range(rows[0].shape[0]) for r in rows]
        save_image(self.out / "previews" / f"step{trainer.global_step:07d}.png", contact_sheet(tiles, cols=3))

    def on_train_end(self, trainer, pl_module):
        # callback_metrics travel back to the main process under ddp_spawn; global_step does not
        trainer.callback_metrics["global_step"] = torch.tensor(float(trainer.global_step))


class SpeedMonitor(L.Callback):
    """Training throughput and peak GPU memory of a run (``train_summary.json``, the CSV log).

    Rates count optimizer steps after the first ``skip`` (worker start-up, cuDNN autotuning,
    compilation), between device-synchronised timestamps; samples/s is steps/s x batch size x
    gradient accumulation x world size (the effective batch). Every ``every`` steps the rate of
    the last window is logged as ``perf/samples_per_s_window`` (rank 0). ``result`` (and
    ``trainer.callback_metrics``, which travel back under ``ddp_spawn``) hold the run's numbers.
    """

    def __init__(self, batch_size: int, accumulate: int = 1, skip: int = 20, every: int = 100):
        self.batch_size, self.accumulate, self.skip, self.every = int(batch_size), int(accumulate), int(skip), int(every)
        self.first: tuple[int, float] | None = None
        self.last: tuple[int, float] | None = None
        self.window: tuple[int, float] | None = None
        self.result: dict[str, float] = {}

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_start(self, trainer, pl_module):
        self.first = self.last = self.window = None
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = int(trainer.global_step)
        if self.last is not None and step == self.last[0]:
            return  # a micro-batch of gradient accumulation: no optimizer step yet
        import time

        if self.first is None and step >= self.skip:
            self._sync(pl_module)
            self.first = self.window = (step, time.perf_counter())
        self.last = (step, time.perf_counter())
        if self.every > 0 and self.window is not None and step - self.window[0] >= self.every:
            rate = (step - self.window[0]) / max(1e-9, self.last[1] - self.window[1])
            pl_module.log("perf/samples_per_s_window", rate * self.samples_per_step(trainer), rank_zero_only=True)
            self.window = self.last

    def samples_per_step(self, trainer) -> int:
        return self.batch_size * self.accumulate * max(1, int(trainer.world_size))

    def on_train_end(self, trainer, pl_module):
        out: dict[str, float] = {"world_size": float(max(1, int(trainer.world_size)))}
        if self.first is not None and self.last is not None and self.last[0] > self.first[0]:
            steps = self.last[0] - self.first[0]
            # the last step's host timestamp: the host runs ahead of the device by at most the few
            # steps between the loss logging's syncs, negligible over a window of hundreds of steps
            rate = steps / max(1e-9, self.last[1] - self.first[1])
            out.update(steps_per_s=rate, samples_per_s=rate * self.samples_per_step(trainer),
                       samples_per_s_per_device=rate * self.samples_per_step(trainer) / out["world_size"],
                       timed_steps=float(steps))
        if pl_module.device.type == "cuda":
            out["peak_memory_gib"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
        self.result = out
        for k, v in out.items():
            trainer.callback_metrics[f"perf/{k}"] = torch.tensor(float(v))
