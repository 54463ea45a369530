"""``nvs eval``: hold out frames, generate them with each method from the rest, score, report."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..config import save_config, to_dict
from ..errors import ConfigError
from .holdout import HoldoutGroup, parse_holdout
from .metrics import load_lpips, mean_table, score
from .report import write_report
from .reproject import reproject
from .settings import EvalConfig, MODEL_METHODS, method_label


# --------------------------------------------------------------------------- run


SHORT_LABELS = {"nearest": "copy", "reproject": "reproj", "model": "model"}


def _sheet_tiles(records: list[dict], images: dict, methods: Sequence[str], size: int, k: int):
    """Tiles (upscaled to >= 128 px so labels fit) and labels of the contact sheet, one row per view:
    ground truth, nearest input (with the copy baseline's PSNR), then each other method."""
    rep = max(1, math.ceil(128 / size))
    blank = np.ones((size, size, 3), np.float32)
    tiles, labels = [], []
    for r in records:
        ims = images[r["index"]]
        for c in ["gt", "nearest_input"] + [m for m in methods if m != "nearest"]:
            im = ims.get(c, blank)
            tiles.append(np.repeat(np.repeat(im, rep, 0), rep, 1))
            mkey = "nearest" if c == "nearest_input" else c
            met = r["metrics"].get(mkey)
            psnr_s = f" {met['psnr']:.1f}dB" if met else (" n/a" if mkey in r["metrics"] else "")
            name = {"gt": f"#{r['index']} truth", "nearest_input": f"input #{r['nearest']}",
                    "model_k": f"k={k}"}.get(c, SHORT_LABELS.get(c, c))
            labels.append(name + psnr_s)
    return tiles, labels


def _model_id(spec: str, model) -> dict:
    info: dict = {"spec": spec, "name": getattr(model.config, "name", None),
                  "camera_mode": model.config.camera_mode, "image_size": model.config.image_size,
                  "parameters": int(sum(p.numel() for p in model.parameters()))}
    p = Path(spec)
    if spec not in ("demo", "in-memory") and p.exists():
        st = p.stat()
        info.update(path=str(p.resolve()), mtime=int(st.st_mtime))
    return info


def run_eval(dataset: str | Path, out: str | Path, cfg: EvalConfig, overwrite: bool = False,
             progress: bool = True, model=None) -> dict:
    """``nvs eval``: hold out views, regenerate them from the others, score, write a report.

    ``dataset``: a scene folder or file any reader of :func:`io.datasets.load_scene`
    understands (``cfg.format``). ``model``: an already loaded ViewConditionedLDM (else
    ``cfg.model`` is loaded when a model method is asked for). Writes into ``out`` (a
    new folder; ``overwrite`` replaces a previous run): ``metrics.json``, ``report.html``,
    ``sheet.png`` (rows: ground truth, nearest input, each method), ``views/*.png`` and
    ``config.yaml``. Returns a summary dict (``out``, ``views``, ``mean``, ``seconds``,
    ``lpips``...).
    """
    from ..io.datasets import load_scene
    from ..io.images import save_image, tensor_to_image
    from ..io.runs import atomic_write_json, run_folder
    from ..io.video import save_contact_sheet
    from ..multiview import generate_nearest, layout_scale, prepare_views, select_anchors, view_scales
    from ..runtime import precision_dtype
    from ..views import load_any_model, resolve_device

    t0 = time.time()
    cfg.validate()
    scene = load_scene(dataset, fmt=cfg.format)
    need_model = any(m in MODEL_METHODS for m in cfg.methods)
    spec = cfg.model
    if need_model:
        if model is None:
            device = resolve_device(cfg.device)
            model = load_any_model(cfg.model, device, precision_dtype(cfg.sampling.precision, device), cfg.use_ema)
        else:
            spec = cfg.model if cfg.model != "demo" else "in-memory"
        size = model.config.image_size
        if cfg.size is not None and cfg.size != size:
            raise ConfigError(f"config key 'size' = {cfg.size} differs from the model's resolution {size}: "
                              "leave size unset (metrics are computed at the model's resolution)")
    else:  # baselines only: the scene's smallest side, at most 256 px
        size = cfg.size or int(min(256, int(scene.sizes.min())))
    views_all = prepare_views(scene, size, cfg.image.mode, cfg.image.background, progress=progress)
    n = len(views_all)
    groups = parse_holdout(cfg.holdout, n)  # positions in views_all
    if cfg.max_views is not None:
        left, kept = cfg.max_views, []
        for g in groups:
            if left <= 0:
                break
            kept.append(HoldoutGroup(g.targets[:left], g.inputs))
            left -= len(kept[-1].targets)
        groups = kept
    for g in groups:  # the invariant the whole evaluation rests on
        assert not set(g.targets) & set(g.inputs), "a held-out view is among its own inputs"

    lpips_metric, lpips_msg = None, "LPIPS off"
    if cfg.lpips != "off":
        lpips_metric, lpips_msg = load_lpips(cfg.lpips, cfg.lpips_weights, "cpu")

    with run_folder(out, overwrite=overwrite) as out:
        save_config(cfg, out / "config.yaml")
        method_seconds = {m: 0.0 for m in cfg.methods}
        records: list[dict] = []
        images: dict[int, dict[str, np.ndarray]] = {}
        scale_sources: set[str] = set()
        k = cfg.anchor.k
        ac = cfg.anchor
        bar = None
        if progress and len(groups) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(groups), desc="held-out groups", unit="group")
        for g in groups:
            inputs = views_all.subset(g.inputs)  # the only views the methods below ever see
            tgt_rows = torch.as_tensor(g.targets, dtype=torch.long)
            tgt_c2w = views_all.c2w[tgt_rows]
            tgt_K = views_all.K[tgt_rows]
            tgt_fov = views_all.fov[tgt_rows]
            gt = (views_all.images[tgt_rows] + 1) / 2
            scales, sources = view_scales(inputs, cfg.scale_mode, cfg.scale)
            scale_sources.update(sources)
            lay = layout_scale(inputs.c2w)
            norm = lay if lay is not None else float(scales.mean())
            near, near_d, _ = select_anchors(tgt_c2w, inputs.c2w, 1, ac.rotation_weight, ac.translation_weight,
                                             ac.power, ac.eps, scale=norm)
            near = near[:, 0]
            seeds = [cfg.sampling.seed + views_all.indices[r] for r in g.targets]
            preds: dict[str, list[Optional[np.ndarray]]] = {}
            extra: dict[str, dict] = {}
            for m in cfg.methods:
                tm = time.time()
                if m == "nearest":
                    preds[m] = [tensor_to_image(inputs.images[j]) for j in near.tolist()]
                elif m == "reproject":
                    row = []
                    for t, j in enumerate(near.tolist()):
                        dep = inputs.depth[j]
                        if dep is None:
                            row.append(None)
                            continue
                        img, cov = reproject(tensor_to_image(inputs.images[j]), dep, inputs.K[j], inputs.c2w[j],
                                             tgt_K[t], tgt_c2w[t], size, cfg.reproject_supersample, cfg.reproject_sky)
                        extra.setdefault(m, {})[t] = {"coverage": round(cov, 4)}
                        row.append(img)
                    preds[m] = row
                else:
                    kk = 1 if m == "model" else min(k, len(inputs))
                    res = generate_nearest(model, inputs, tgt_c2w, tgt_fov, k=kk, rotation_weight=ac.rotation_weight,
                                           translation_weight=ac.translation_weight, power=ac.power, eps=ac.eps,
                                           cfg=cfg.sampling, scale_mode=cfg.scale_mode, default_scale=cfg.scale,
                                           seeds=seeds, progress=progress)
                    preds[m] = [tensor_to_image(res.images[t]) for t in range(len(g.targets))]
                    s = res.summary()
                    for t in range(len(g.targets)):
                        extra.setdefault(m, {})[t] = {"anchors": s["anchors"][t], "weights": s["weights"][t]}
                method_seconds[m] += time.time() - tm
            for t, row in enumerate(g.targets):
                idx = views_all.indices[row]
                rec = {"index": idx, "name": views_all.names[row], "num_inputs": len(g.inputs),
                       "nearest": inputs.indices[int(near[t])], "nearest_distance": round(float(near_d[t, 0]), 6),
                       "fov_deg": round(math.degrees(float(tgt_fov[t])), 4), "seed": seeds[t],
                       "metrics": {}, "details": {}, "images": {}}
                ims = {"gt": tensor_to_image(gt[t] * 2 - 1), "nearest_input": tensor_to_image(inputs.images[int(near[t])])}
                for m in cfg.methods:
                    p = preds[m][t]
                    if p is None:
                        rec["metrics"][m] = None
                        rec["details"][m] = "no depth for the nearest input"
                        continue
                    pt = torch.from_numpy(p).permute(2, 0, 1)[None]
                    rec["metrics"][m] = score(pt, gt[t:t + 1], cfg.ssim, lpips_metric, cfg.lpips != "off")[0]
                    if m in extra and t in extra[m]:
                        rec["details"][m] = extra[m][t]
                    ims[m] = p
                if cfg.save_images:
                    for name, im in ims.items():
                        if name == "nearest":  # the same pixels as nearest_input
                            continue
                        rel = f"views/{idx:04d}_{name}.png"
                        save_image(out / rel, im)
                        rec["images"][name] = rel
                    if "nearest" in ims:
                        rec["images"]["nearest"] = rec["images"]["nearest_input"]
                images[idx] = ims
                records.append(rec)
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        records.sort(key=lambda r: r["index"])
        mean = mean_table(records, cfg.methods)
        result = {
            "dataset": str(dataset),
            "scene": scene.name,
            "size": size,
            "seed": cfg.sampling.seed,
            "k": k,
            "model": _model_id(spec, model) if need_model else None,
            "methods": list(cfg.methods),
            "method_labels": {m: method_label(m, k) for m in cfg.methods},
            "holdout": {"spec": cfg.holdout, "groups": len(groups),
                        "targets": [views_all.indices[r] for g in groups for r in g.targets]},
            "scene_scale": {"mode": cfg.scale_mode, "sources": sorted(scale_sources)},
            "lpips": {"network": cfg.lpips, "available": lpips_metric is not None, "message": lpips_msg},
            "skipped": [{"index": i, "reason": r} for i, r in views_all.skipped],
            "distortion": scene.distortion,
            "mean": mean,
            "views": records,
            "seconds": {"total": None, **{m: round(s, 3) for m, s in method_seconds.items()}},
            "config": to_dict(cfg),
        }
        if records:
            tiles, labels = _sheet_tiles(records, images, cfg.methods, size, k)
            save_contact_sheet(out / "sheet.png", tiles, labels=labels,
                               cols=2 + len([m for m in cfg.methods if m != "nearest"]))
        result["seconds"]["total"] = round(time.time() - t0, 3)
        write_report(out / "report.html", {**result, "model": result["model"] or {"spec": None}}, images)
        atomic_write_json(out / "metrics.json", result)
        return {"out": str(out), "views": len(records), "mean": mean, "seconds": result["seconds"]["total"],
                "lpips": lpips_msg, "lpips_available": lpips_metric is not None, "scale_sources": sorted(scale_sources), "skipped": len(views_all.skipped),
                "size": size}
