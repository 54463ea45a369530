"""A distillation run's saved state: checkpoints (modules, optimizer, step, RNG, history) and
loading a finished run."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import NovelViewsError

from .distill_config import DistillConfig, read_run_config
from .step import Scene, build_scene

CHECKPOINT = "checkpoints/last.pt"


# --------------------------------------------------------------------------- checkpoints


def rng_state(gen: torch.Generator) -> dict:
    st = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict, gen: torch.Generator) -> None:
    gen.set_state(st["gen"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: Path, step: int, scene: Scene, opt, scaler, gen, history: list[dict],
                    meta: dict) -> Path:
    from ..io.runs import atomic_save

    state = {"format": "novelviews-distill", "version": 1, "step": int(step), "meta": meta,
             "modules": {k: m.state_dict() for k, m in scene.modules().items()},
             "optimizer": opt.state_dict() if opt is not None else None,
             "scaler": scaler.state_dict() if scaler is not None else None,
             "rng": rng_state(gen) if gen is not None else None, "history": history}
    return atomic_save(Path(path), lambda p: torch.save(state, p))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise NovelViewsError(f"no distillation checkpoint at '{path}': run `nvs distill` first "
                              "(or drop --resume to start a new run)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        raise NovelViewsError(f"cannot read the checkpoint '{path}' ({exc.__class__.__name__}): "
                              "it is corrupt or not from `nvs distill`") from None
    if not isinstance(state, dict) or state.get("format") != "novelviews-distill":
        raise NovelViewsError(f"'{path}' is not an `nvs distill` checkpoint")
    return state


def load_modules(scene: Scene, state: dict) -> None:
    """The scene's modules from a checkpoint; an occupancy grid missing from it (a run saved
    without one) starts all occupied, which skips nothing."""
    for k, m in scene.modules().items():
        if k == "occupancy" and k not in state["modules"]:
            continue
        m.load_state_dict(state["modules"][k])


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[DistillConfig, Scene, dict]:
    """Rebuild a run's NeRF from ``config.yaml`` + ``checkpoints/last.pt`` (no diffusion model needed)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise NovelViewsError(f"'{run_dir}' is not a distillation run (no config.yaml): pass the --out folder "
                              "of `nvs distill`")
    cfg = read_run_config(cfg_path)
    dev = torch.device(device)
    state = load_checkpoint(run_dir / CHECKPOINT, map_location=dev)
    scene = build_scene(cfg, int(state["meta"]["image_size"]), dev)
    load_modules(scene, state)
    scene.fov = float(state["meta"]["fov"])
    for m in scene.modules().values():
        m.eval()
    return cfg, scene, state
