"""``nvs train``: train or fine-tune the view-conditioned LDM (or its VAE) with Lightning.

Data: scene folders / dataset roots (any layout :func:`~novelviews.io.datasets.load_scene`
reads) mixed with weights, and/or procedural scenes rendered on the fly
(``synth.scenes > 0``, on the training device). Multi-GPU through Lightning's DDP
(``devices``, ``strategy``); checkpoints + ``--resume``; CSV logs; a validation step that
samples views and logs PSNR against the copy-the-input baseline; the EMA weights are
exported as a model folder (``model/``) loadable by every command (``--model RUN/model``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import torch

from ..config import check_range, save_config
from ..errors import ConfigError, NovelViewsError


@dataclass
class DataSource:
    path: str = ""
    weight: float = 1.0
    max_frame_gap: int = 0  # video-like sources (RealEstate10K, ACID): pairs at most this many frames apart


@dataclass
class SynthSource:
    scenes: int = 0  # procedural scenes rendered for training (0 = none)
    views: int = 16
    seed: int = 10_000  # training seeds start here; evaluation uses seeds below it
    family: str = "mixed"
    spp: int = 2
    weight: float = 1.0


@dataclass
class TrainConfig:
    model: str = "demo"  # preset name / YAML of a new model's architecture
    init: Optional[str] = None  # checkpoint to start from (fine-tuning): .ckpt, .safetensors, folder
    stage: Literal["ldm", "vae"] = "ldm"
    data: list[DataSource] = field(default_factory=list)
    synth: SynthSource = field(default_factory=SynthSource)
    image_mode: Literal["crop", "pad"] = "crop"
    batch_size: int = 32
    max_steps: int = 1000
    lr: float = 1e-4
    cc_lr_mult: float = 10.0  # cc_projection learns 10x faster (reference)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    accumulate: int = 1
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    ema_decay: float = 0.999  # 0 disables EMA
    drop_context: float = 0.05  # CFG dropout: context token only
    drop_both: float = 0.05  # context token and conditioning latent
    drop_latent: float = 0.05  # conditioning latent only
    kl_weight: float = 1e-6  # VAE stage
    freeze_vae: bool = True  # LDM stage: VAE frozen (as the reference)
    vae_train: Literal["all", "decoder"] = "all"  # VAE stage: "decoder" keeps the latent space (LDM stays valid)
    freeze_image_encoder: bool = False
    accelerator: str = "auto"
    devices: str = "auto"  # "auto", "1", "4", "0,1"
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ...
    num_workers: int = 2
    val_every: int = 500
    val_batch: int = 8
    val_steps: int = 20
    val_guidance: float = 3.0
    ckpt_every: int = 500
    log_every: int = 25
    seed: int = 0
    compile: bool = False
    max_minutes: float = 0.0  # stop (and export) after this much training time; 0 = no limit

    def validate(self) -> None:
        check_range("batch_size", self.batch_size, 1)
        check_range("max_steps", self.max_steps, 1)
        check_range("lr", self.lr, 0.0, 1.0, lo_open=True)
        check_range("accumulate", self.accumulate, 1)
        for k in ("drop_context", "drop_both", "drop_latent"):
            check_range(k, getattr(self, k), 0.0, 1.0)
        if self.drop_context + self.drop_both + self.drop_latent > 1:
            raise ConfigError("drop_context + drop_both + drop_latent must not exceed 1")
        if self.precision not in ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"):
            raise ConfigError(f"config key 'precision' = {self.precision!r}: use 32-true, bf16-mixed or 16-mixed")
        if self.stage == "ldm" and not self.data and self.synth.scenes == 0:
            raise ConfigError("no training data: give dataset folders (nvs train DATA...) or synth.scenes=N")


def build_model(cfg: TrainConfig):
    from ..model.checkpoints import load_model
    from ..model.configuration import model_config
    from ..model.ldm import ViewConditionedLDM

    if cfg.init:
        model, report = load_model(cfg.init)
        print(report.summary() if hasattr(report, "summary") else report)
        return model
    return ViewConditionedLDM(model_config(cfg.model))


def build_pairs(cfg: TrainConfig, model, device: str, progress: bool = True):
    from .data import MixedPairDataset, PairBatches, PairDataset, pool_from_paths, pool_from_synth

    size, mode = model.config.image_size, model.config.camera_mode
    datasets, weights = [], []
    for i, src in enumerate(cfg.data):
        pool = pool_from_paths([src.path], size, cfg.image_mode, progress)
        datasets.append(PairDataset(pool, mode, seed=cfg.seed + i, max_frame_gap=src.max_frame_gap))
        weights.append(src.weight)
    if cfg.synth.scenes > 0:
        pool = pool_from_synth(cfg.synth.scenes, cfg.synth.views, size, cfg.synth.seed, cfg.synth.family,
                               device=device, spp=cfg.synth.spp, progress=progress)
        datasets.append(PairDataset(pool, mode, seed=cfg.seed + 101))
        weights.append(cfg.synth.weight)
    train = PairBatches(datasets, weights, cfg.batch_size, num_batches=cfg.max_steps * cfg.accumulate, seed=cfg.seed)
    val = MixedPairDataset(datasets, weights, length=cfg.val_batch, seed=cfg.seed + 999_983)
    return train, val


class _Exporter:
    """Lightning callback: periodic preview grid + final export of the EMA weights."""

    def __new__(cls, *a, **k):  # built lazily so importing this module does not import lightning
        import lightning as L

        class Exporter(L.Callback):
            def __init__(self, out: Path):
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

        return Exporter(*a, **k)


def run_train(cfg: TrainConfig, out: str | Path, resume: bool = False, overwrite: bool = False,
              progress: bool = True) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from ..io.runs import atomic_write_json, prepare_run_dir
    from .module import LDMModule, VAEModule

    out = Path(out)
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        raise NovelViewsError(f"--resume: no checkpoint at {last}; start without --resume")
    out = prepare_run_dir(out, overwrite=overwrite, resume=resume)
    save_config(cfg, out / "config.yaml")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    t0 = time.time()
    model = build_model(cfg)
    render_device = "cuda" if torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda") else "cpu"
    train_ds, val_ds = build_pairs(cfg, model, render_device, progress)
    data_seconds = time.time() - t0
    module = (LDMModule if cfg.stage == "ldm" else VAEModule)(model, cfg)
    if cfg.compile:
        module.model.unet = torch.compile(module.model.unet)
    workers = cfg.num_workers
    # items are whole batches (built vectorised), so batch_size=None
    train_dl = DataLoader(train_ds, batch_size=None, shuffle=False, num_workers=workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)
    val_dl = DataLoader(val_ds, batch_size=cfg.val_batch, num_workers=0)
    devices: str | int | list[int] = cfg.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, every_n_train_steps=cfg.ckpt_every,
                           save_top_k=0)
    trainer = L.Trainer(
        default_root_dir=out, max_steps=cfg.max_steps, accelerator=cfg.accelerator, devices=devices,
        strategy=cfg.strategy, precision=cfg.precision, gradient_clip_val=cfg.grad_clip or None,
        accumulate_grad_batches=cfg.accumulate, val_check_interval=min(cfg.val_every, cfg.max_steps * cfg.accumulate), check_val_every_n_epoch=None,
        limit_val_batches=1, num_sanity_val_steps=0, log_every_n_steps=cfg.log_every,
        logger=CSVLogger(out, name="logs", version=""), callbacks=[ckpt, LearningRateMonitor("step"), _Exporter(out)],
        enable_progress_bar=progress, enable_model_summary=False,
        max_time={"minutes": cfg.max_minutes} if cfg.max_minutes > 0 else None,
    )
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume else None)
    train_seconds = time.time() - t0 - data_seconds
    info = {"steps": int(trainer.global_step), "data_seconds": round(data_seconds, 1),
            "train_seconds": round(train_seconds, 1), "out": str(out)}
    if trainer.global_rank == 0:
        final = module.eval_model()
        final.save_pretrained(out / "model", overwrite=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        info["metrics"] = metrics
        atomic_write_json(out / "train_summary.json", info)
    return info


def parse_data_args(items: list[str]) -> tuple[list[dict], list[str]]:
    """Split ``nvs train`` positionals: ``PATH[:weight]`` data sources vs ``key=value`` overrides."""
    data, overrides = [], []
    for it in items:
        if "=" in it and not Path(it).exists():
            overrides.append(it)
            continue
        path, weight = it, 1.0
        if ":" in it and not Path(it).exists():
            path, w = it.rsplit(":", 1)
            try:
                weight = float(w)
            except ValueError:
                raise ConfigError(f"data source '{it}': the weight after ':' must be a number") from None
        data.append({"path": path, "weight": weight})
    return data, overrides


def summary_line(info: dict) -> str:
    return json.dumps(info)
