"""``nvs train``: train or fine-tune the view-conditioned LDM (or its VAE) with Lightning.

Data: scene folders / dataset roots (any layout :func:`~novelviews.io.datasets.load_scene`
reads) mixed with weights, and/or procedural scenes rendered on the fly
(``synth.scenes > 0``, on the training device). Multi-GPU through Lightning's DDP
(``devices``, ``strategy``); checkpoints + ``--resume``; CSV logs; a validation step that
samples views and logs PSNR against the copy-the-input baseline; the EMA weights are
exported as a model folder (``model/``) loadable by every command (``--model RUN/model``).
With a frozen VAE (the LDM default) ``cache_latents`` encodes every pool view once before
training, on the training device, and the steps draw target latents from the cached posterior.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Optional

import torch

from ..config import check_range, save_config
from ..errors import ConfigError, NovelViewsError

log = logging.getLogger(__name__)  # notes for the user; the CLI prints them


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
    arch: str = "demo"  # architecture preset name / YAML of a new model (--arch; old name: model)
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
    # after the warm-up: constant, or cosine / linear decay to min_lr_ratio x lr at max_steps (a run
    # stopped earlier by max_minutes ends before the bottom)
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    accumulate: int = 1
    # auto | fp32 | fp16 | bf16 (runtime.PRECISIONS; fp16 / bf16 = mixed precision, auto = bf16 on a GPU
    # that supports it, else fp32) or bf16-true (weights in bf16 too); Lightning's names (32-true,
    # 16-mixed, bf16-mixed) still work
    precision: Literal["auto", "fp32", "fp16", "bf16", "bf16-true"] = "fp32"
    ema_decay: float = 0.999  # 0 disables EMA
    drop_context: float = 0.05  # CFG dropout: context token only
    drop_both: float = 0.05  # context token and conditioning latent
    drop_latent: float = 0.05  # conditioning latent only
    kl_weight: float = 1e-6  # VAE stage
    # VAE stage with vae_train=all: weight of the squared distance (in scaled latent units) between the
    # trained encoder's posterior means and the initial encoder's, which keeps an LDM trained on the
    # initial latents valid while the VAE learns new images (0 = off)
    vae_anchor: float = 0.0
    # VAE stage: the decoder also learns from latents with added Gaussian noise, per image of std
    # uniform in [0, vae_latent_noise] (scaled latent units, where latents have unit RMS), so it
    # decodes imperfect latents - the UNet's samples - and not only the encoder's (0 = off)
    vae_latent_noise: float = 0.0
    freeze_vae: bool = True  # LDM stage: VAE frozen (as the reference)
    vae_train: Literal["all", "decoder"] = "all"  # VAE stage: "decoder" keeps the latent space (LDM stays valid)
    freeze_image_encoder: bool = False
    accelerator: str = "auto"
    devices: str = "auto"  # "auto", "1", "4", "0,1"
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ...
    num_workers: int = 2
    val_every: int = 500
    val_batch: int = 8
    # scenes of each data source held out of training and used only for the validation pairs (the
    # last N scenes of the source); 0 = validation pairs come from the training scenes, which hides
    # memorisation of a small scene pool (docs/RESULTS.md, v6)
    val_scenes: int = 0
    # also train on the mirror image of every training scene (ViewPool.mirrored: images flipped, cameras
    # reflected - a valid scene, twice the distinct pairs at no rendering cost); validation stays unmirrored
    mirror: bool = False
    # share of training pairs whose target is the condition view itself (zero camera offset): teaches the
    # model to keep its input (validation pairs are unchanged)
    identity_pairs: float = 0.0
    val_steps: int = 20
    val_guidance: float = 3.0
    ckpt_every: int = 500
    log_every: int = 25
    seed: int = 0
    # torch.compile of the UNet and the trainable image encoder, in place (train.module.prepare_for_training:
    # checkpoint / export keys unchanged); the first step pays ~1 min of compilation per process
    compile: bool = False
    compile_backend: str = "inductor"  # torch.compile backend (aot_eager: no C++ compiler needed, for debugging)
    channels_last: bool = False  # UNet / image encoder weights channels-last (pays off with compile)
    max_minutes: float = 0.0  # stop (and export) after this much training time; 0 = no limit
    latent_scale: float = 0.0  # LDM stage: 0 keeps the model's scaling factor; -1 sets 1/std of the data's latents
    # LDM stage with a frozen VAE: encode every pool view once before training (posterior mean + std)
    # instead of 2 x batch VAE encodes per step; ignored (the encoder runs per step) when the VAE trains
    cache_latents: bool = True
    export_model: bool = True  # write the final (EMA) weights to OUT/model (off: benchmarks of big models)

    #: old key names and values, still read (README.md, "Renamed config keys")
    RENAMED: ClassVar[dict[str, str]] = {"model": "arch"}
    RENAMED_VALUES: ClassVar[dict[str, dict]] = {
        "precision": {"32-true": "fp32", "32": "fp32", 32: "fp32", "16-mixed": "fp16", "bf16-mixed": "bf16"}}

    def validate(self) -> None:
        check_range("batch_size", self.batch_size, 1)
        check_range("max_steps", self.max_steps, 1)
        check_range("lr", self.lr, 0.0, 1.0, lo_open=True)
        check_range("accumulate", self.accumulate, 1)
        check_range("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range("val_scenes", self.val_scenes, 0)
        check_range("identity_pairs", self.identity_pairs, 0.0, 1.0)
        check_range("vae_anchor", self.vae_anchor, 0.0)
        check_range("vae_latent_noise", self.vae_latent_noise, 0.0, 10.0)
        for k in ("drop_context", "drop_both", "drop_latent"):
            check_range(k, getattr(self, k), 0.0, 1.0)
        if self.drop_context + self.drop_both + self.drop_latent > 1:
            raise ConfigError("drop_context + drop_both + drop_latent must not exceed 1")
        if self.compile and self.compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
            raise ConfigError(f"compile_backend = {self.compile_backend!r} is not a torch.compile backend: use one of "
                              f"{', '.join(torch._dynamo.list_backends(exclude_tags=()))} (inductor is the fast one)")
        if self.stage == "vae" and (self.compile or self.channels_last):
            raise ConfigError("compile / channels_last speed up the ldm stage only: leave them off for stage=vae")
        if self.stage == "ldm" and not self.data and self.synth.scenes == 0:
            raise ConfigError("no training data: give dataset folders (nvs train DATA...) or synth.scenes=N")


#: Lightning's precision of each word of TrainConfig.precision (auto: see :func:`lightning_precision`)
LIGHTNING_PRECISION = {"fp32": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed", "bf16-true": "bf16-true"}


def lightning_precision(cfg: TrainConfig) -> str:
    """The Lightning precision string of ``cfg.precision``; ``auto`` = bf16 mixed precision on a GPU
    that supports it (accelerator auto / gpu / cuda), else 32-bit."""
    if cfg.precision != "auto":
        return LIGHTNING_PRECISION[cfg.precision]
    gpu = cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"

# what a resumed run may take from the new call: how long it trains and on what hardware, how often it
# validates, checkpoints, logs and whether it exports; everything else is the run's own (OUT/config.yaml)
RESUME_SETTINGS = ("max_steps", "max_minutes", "accelerator", "devices", "strategy", "num_workers", "compile",
                   "compile_backend", "val_every", "ckpt_every", "log_every", "export_model")


def resumed_config(out: str | Path, given: dict | None = None) -> TrainConfig:
    """The config ``nvs train --resume`` continues with: the run's saved ``OUT/config.yaml`` in full,
    with those of the call's settings ``given`` (a nested dict of what the call set: shortcuts, YAML
    files, overrides) that are :data:`RESUME_SETTINGS` applied. Each applied setting and each other
    setting of the call that differs from the run's (ignored) is named in a note."""
    from ..config import flatten_dotted, from_dict, merge, read_yaml, to_dict

    out = Path(out)
    last = out / "checkpoints" / "last.ckpt"
    if not last.exists():
        raise NovelViewsError(f"--resume: no checkpoint at {last}; start without --resume")
    if not (out / "config.yaml").is_file():
        raise NovelViewsError(f"--resume: {out / 'config.yaml'} is missing, so the run's settings are unknown; "
                              "start without --resume")
    saved = read_yaml(out / "config.yaml")
    given = dict(given or {})
    asked = flatten_dotted(to_dict(from_dict(TrainConfig, merge(saved, given))))  # strict: keys and values checked
    own = flatten_dotted(to_dict(from_dict(TrainConfig, saved)))
    changed = sorted(k for k in asked if asked[k] != own.get(k))
    applied = [k for k in changed if k.split(".")[0] in RESUME_SETTINGS]
    ignored = [k for k in changed if k not in applied]
    cfg = from_dict(TrainConfig, merge(saved, {k: given[k] for k in given if k in RESUME_SETTINGS}))
    if applied:
        log.info("note: resuming with the run's saved config; changed by this call: "
                 + ", ".join(f"{k} {own.get(k)!r} -> {asked[k]!r}" for k in applied))
    if ignored:
        log.info(f"note: resuming with the run's saved config ({out / 'config.yaml'}); these settings of this call "
                 f"are ignored (a resumed run keeps them): {', '.join(ignored)}")
    return cfg


def build_model(cfg: TrainConfig):
    from ..model.checkpoints import load_model
    from ..model.configuration import model_config
    from ..model.ldm import ViewConditionedLDM

    if cfg.init:
        model, report = load_model(cfg.init)
        log.info(report.summary() if hasattr(report, "summary") else str(report))
        return model
    return ViewConditionedLDM(model_config(cfg.arch))


def build_pairs(cfg: TrainConfig, model, device: str, progress: bool = True):
    from .data import ViewPool, pool_from_paths, pool_from_synth
    from .pairs import MixedPairDataset, PairBatches, PairDataset

    size, mode = model.config.image_size, model.config.camera_mode
    datasets, val_sets, weights = [], [], []

    def add(pool, seed: int, weight: float, gap: int = 0) -> None:
        if cfg.val_scenes > 0:  # validation pairs from held-out scenes
            pool, val_pool = pool.split_scenes(cfg.val_scenes)
            val_sets.append(PairDataset(val_pool, mode, seed=seed, max_frame_gap=gap))
        if cfg.mirror:
            pool = ViewPool.cat([pool, pool.mirrored()])
        datasets.append(PairDataset(pool, mode, seed=seed, max_frame_gap=gap, identity_fraction=cfg.identity_pairs))
        if cfg.val_scenes == 0:  # ... else from the training pairs themselves (mirrored ones too, with mirror;
            # never identity pairs)
            val_sets.append(datasets[-1] if cfg.identity_pairs == 0 else PairDataset(pool, mode, seed=seed,
                                                                                      max_frame_gap=gap))
        weights.append(weight)

    for i, src in enumerate(cfg.data):
        add(pool_from_paths([src.path], size, cfg.image_mode, progress), cfg.seed + i, src.weight, src.max_frame_gap)
    if cfg.synth.scenes > 0:
        add(pool_from_synth(cfg.synth.scenes, cfg.synth.views, size, cfg.synth.seed, cfg.synth.family,
                            device=device, spp=cfg.synth.spp, progress=progress), cfg.seed + 101, cfg.synth.weight)
    train = PairBatches(datasets, weights, cfg.batch_size, num_batches=cfg.max_steps * cfg.accumulate, seed=cfg.seed)
    val = MixedPairDataset(val_sets, weights, length=cfg.val_batch, seed=cfg.seed + 999_983)
    return train, val


def run_train(cfg: TrainConfig, out: str | Path, resume: bool = False, overwrite: bool = False,
              progress: bool = True) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from torch.utils.data import DataLoader

    from ..io.runs import atomic_write_json, run_folder
    from .callbacks import Exporter, SpeedMonitor
    from .module import LDMModule, VAEModule, prepare_for_training
    from .pairs import BatchOrder

    out = Path(out)
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        raise NovelViewsError(f"--resume: no checkpoint at {last}; start without --resume")
    launched_rank = _launched_rank()
    # a DDP process that Lightning's launcher started by re-running the command (rank > 0) writes
    # into the folder rank 0 made (a second run_folder with --overwrite would set rank 0's run aside)
    folder = run_folder(out, overwrite=overwrite, resume=resume) if launched_rank == 0 else contextlib.nullcontext(out)
    with folder as out:
        if launched_rank == 0:
            save_config(cfg, out / "config.yaml")
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        t0 = time.time()
        model = build_model(cfg)
        local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
        use_cuda = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
        render_device = f"cuda:{local_rank % torch.cuda.device_count()}" if use_cuda else "cpu"
        train_ds, val_ds = build_pairs(cfg, model, render_device, progress)
        data_seconds = time.time() - t0
        if cfg.stage == "ldm" and cfg.latent_scale != 0:
            set_latent_scale(model, train_ds, cfg.latent_scale, render_device)
        cache_seconds = 0.0
        if cfg.stage == "ldm" and cfg.freeze_vae and cfg.cache_latents:
            t1 = time.time()
            cache_latents(train_ds, model, render_device, 2 * cfg.batch_size, progress)
            cache_seconds = time.time() - t1
        train_ds.uint8 = True  # a quarter of the bytes through workers / pinning / H2D; made float on the device
        module = (LDMModule if cfg.stage == "ldm" else VAEModule)(model, cfg)
        changed = prepare_for_training(module.model, cfg.compile, cfg.channels_last, cfg.compile_backend)
        if changed:
            log.info(f"training speed-ups: {', '.join(changed)}")
        devices: str | int | list[int] = cfg.devices
        if isinstance(devices, str) and devices.isdigit():
            devices = int(devices)
        speed = SpeedMonitor(cfg.batch_size, cfg.accumulate, skip=min(20, max(0, cfg.max_steps // 4)),
                             every=max(cfg.log_every, 50))
        # a resumed run continues the batch order where the checkpoint left it (BatchOrder) and keeps the
        # log's rows of the steps before it
        resumed_step, start, start_epoch = resume_position(last, cfg.accumulate) if resume else (0, 0, 0)
        logger = csv_logger(out, resumed_step if resume and launched_rank == 0 else None)
        ckpt = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, every_n_train_steps=cfg.ckpt_every,
                               save_top_k=0)
        trainer = L.Trainer(
            default_root_dir=out, max_steps=cfg.max_steps, accelerator=cfg.accelerator, devices=devices,
            strategy=cfg.strategy, precision=lightning_precision(cfg), gradient_clip_val=cfg.grad_clip or None,
            accumulate_grad_batches=cfg.accumulate, val_check_interval=min(cfg.val_every, cfg.max_steps * cfg.accumulate), check_val_every_n_epoch=None,
            limit_val_batches=1, num_sanity_val_steps=0, log_every_n_steps=cfg.log_every,
            logger=logger, callbacks=[ckpt, LearningRateMonitor("step"), Exporter(out), speed],
            enable_progress_bar=progress, enable_model_summary=False,
            max_time={"minutes": cfg.max_minutes} if cfg.max_minutes > 0 else None,
            use_distributed_sampler=False,  # the training order is BatchOrder's; validation sees the same batch
        )
        # Under DDP the W ranks take disjoint batch indices (BatchOrder, in place of Lightning's
        # DistributedSampler: use_distributed_sampler=False), each step uses W x batch_size pairs (the
        # effective batch), and W x max_steps batches keep every batch of the run distinct.
        per_process = cfg.max_steps * cfg.accumulate
        train_ds.num_batches = per_process * max(1, trainer.world_size)
        workers = cfg.num_workers
        # items are whole batches (built vectorised), so batch_size=None; the loaders draw their worker
        # seeds from generators of their own, so iterating them leaves the global RNG streams (restored
        # from the checkpoint on resume) as an uninterrupted run has them
        train_dl = DataLoader(train_ds, batch_size=None, sampler=BatchOrder(per_process, start, start_epoch),
                              num_workers=workers, pin_memory=torch.cuda.is_available(),
                              persistent_workers=workers > 0, generator=torch.Generator().manual_seed(cfg.seed))
        val_dl = DataLoader(val_ds, batch_size=cfg.val_batch, num_workers=0,
                            generator=torch.Generator().manual_seed(cfg.seed))
        # with compile: a graph that fails to compile runs eagerly (with a warning) instead of ending the run
        guard = torch._dynamo.config.patch(suppress_errors=True) if cfg.compile else contextlib.nullcontext()
        with guard, warnings.catch_warnings():
            # Lightning's note that a mid-epoch resume repeats the epoch's first batches: BatchOrder skips them
            warnings.filterwarnings("ignore", message=".*ended before the epoch ended.*")
            trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume else None)
        train_seconds = time.time() - t0 - data_seconds - cache_seconds
        steps = max(int(trainer.global_step), int(trainer.callback_metrics.get("global_step", 0)))
        info = {"steps": steps, "data_seconds": round(data_seconds, 1), "cache_seconds": round(cache_seconds, 1),
                "train_seconds": round(train_seconds, 1), "out": str(out)}
        perf = speed.result or {k[5:]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("perf/")}
        info.update({k: round(float(v), 4) for k, v in perf.items()})
        if trainer.global_rank == 0:
            if cfg.export_model:
                module.eval_model().save_pretrained(out / "model", overwrite=True)
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            info["metrics"] = metrics
            atomic_write_json(out / "train_summary.json", info)
        return info


def csv_logger(out: Path, keep_before_step: int | None = None):
    """The run's CSV log (``OUT/logs/metrics.csv``), written at every logged step so that a killed
    run's log reaches its last step.

    ``keep_before_step`` (a resumed run, rank 0): the previous log's rows of the steps before it are
    kept - Lightning's logger starts a fresh file - and the resumed run appends its own, so the log
    holds the whole run once (rows a killed run logged after its checkpoint are logged again).
    """
    import csv
    import io

    from lightning.pytorch.loggers import CSVLogger

    from ..io.runs import atomic_write_text

    path = out / "logs" / "metrics.csv"
    header, kept = [], []
    if keep_before_step is not None and path.is_file():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            for row in reader:
                try:
                    step = int(float(row.get("step") or "nan"))
                except ValueError:
                    continue
                if step < keep_before_step and None not in row and None not in row.values():
                    kept.append(row)  # (a torn last line of a killed run is dropped)
    aside = path.with_name("metrics.previous.csv")
    if kept:  # set aside, not deleted, while the logger starts (it removes a metrics.csv it finds)
        os.replace(path, aside)
    logger = CSVLogger(out, name="logs", version="", flush_logs_every_n_steps=1)
    writer = logger.experiment if kept else None
    if kept and hasattr(writer, "metrics_keys"):
        writer.metrics_keys = sorted(header)  # the resumed run's rows extend this header
        text = io.StringIO(newline="")
        out_csv = csv.DictWriter(text, fieldnames=sorted(header))
        out_csv.writeheader()
        out_csv.writerows(kept)
        atomic_write_text(path, text.getvalue())
        aside.unlink()
    return logger


def resume_position(checkpoint: str | Path, accumulate: int = 1) -> tuple[int, int, int]:
    """Where a run resumed from ``checkpoint`` continues: ``(global step, batches each process
    consumed in the checkpoint's epoch, that epoch)`` - the last two place its batch order.

    Read from Lightning's loop state (the batches fetched in the epoch, the one being processed
    when the checkpoint was written included); without it, global step x ``accumulate`` (a run is
    one epoch and checkpoints follow optimizer steps).
    """
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # truncated, not a torch file, ...
        raise NovelViewsError(f"--resume: cannot read the checkpoint {checkpoint} ({type(e).__name__}); "
                              "start without --resume") from None
    try:
        step, epoch = int(ckpt["global_step"]), int(ckpt.get("epoch", 0))
    except (AttributeError, KeyError, TypeError, ValueError):
        raise NovelViewsError(f"--resume: {checkpoint} is not a training checkpoint of nvs train (no global step); "
                              "start without --resume") from None
    try:
        consumed = int(ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["ready"])
    except (KeyError, TypeError, ValueError):
        consumed = step * max(1, int(accumulate)) if epoch == 0 else 0
    return step, max(0, consumed), max(0, epoch)


def _launched_rank() -> int:
    """Non-zero in a process a distributed launcher started for rank > 0 (Lightning's DDP
    subprocess launcher, torchrun, multi-node): read from RANK / LOCAL_RANK / NODE_RANK."""
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(key, "0") or "0"
        if value.isdigit() and int(value) != 0:
            return int(value)
    return 0


def cache_latents(batches, model, device: str, chunk: int = 32, progress: bool = True) -> int:
    """Cache the frozen VAE's posterior of every pool behind ``batches`` (a :class:`~.pairs.PairBatches`).

    Each pool is encoded once on ``device`` (the training device) in chunks of ``chunk`` views,
    without gradients (:func:`~novelviews.train.data.cache_pool_latents`); the validation pairs
    share the pools. Returns the number of views encoded.
    """
    from .data import cache_pool_latents

    pools = {id(ds.pool): ds.pool for ds in batches.mixed.datasets}  # each pool once
    for pool in pools.values():
        cache_pool_latents(pool, model.vae, device, chunk=chunk, progress=progress)
    return sum(len(pool) for pool in pools.values())


@torch.no_grad()
def set_latent_scale(model, batches, value: float, device: str, num_batches: int = 4) -> float:
    """Set the VAE scaling factor: ``value > 0`` as given, ``-1`` as 1 / RMS of the data's latents.

    SD's 0.18215 gives SD-VAE latents (near zero mean) unit variance; a VAE of our own needs its
    own factor (latent-diffusion estimates it from the first batch), else the noise schedule's
    signal-to-noise ratios are off. The RMS (not the std) is used so that latents with a large
    mean are not blown up: the scaled latents have unit second moment.
    """
    if value > 0:
        factor = float(value)
    else:
        vae = model.vae.to(device)
        # a fixed generator: every DDP rank (each runs this) gets the same factor
        g = torch.Generator(device).manual_seed(0)
        zs = [vae.encode(batches[i]["target"].to(device)).latent_dist.sample(generator=g)
              for i in range(min(num_batches, len(batches)))]
        factor = float(torch.cat(zs).float().square().mean().rsqrt())
        model.vae.to("cpu")
    model.config.vae.scaling_factor = factor
    model.vae.register_to_config(scaling_factor=factor)
    log.info(f"latent scaling factor set to {factor:.5f}")
    return factor


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
