"""Where a demo model loses PSNR (docs/RESULTS.md, 2026-11-26), on held-out orbit scenes:

- VAE: PSNR of the input's reconstruction, and of the reconstructed copy against each target
  (does the autoencoder cap the model, or does its blur even help?);
- conditioning: epsilon MSE of the *input itself* as the target (0-degree offset) at several
  noise levels, with the conditioning latent kept, zeroed, and with the camera zeroed - a model
  that uses its conditioning latent predicts the noise far better with it.

    python benchmarks/demo_diagnostics.py --scenes 12 --out runs/diag.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from novelviews import cameras as C
from novelviews.evaluate import psnr
from novelviews.sampling import schedule_alphas
from novelviews.views import load_any_model, resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_quality import scene_views  # noqa: E402  (the quality benchmark's scenes and targets)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--offsets", default="15,30,60,90")
    ap.add_argument("--timesteps", default="100,300,500,700,900")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    dev = resolve_device(a.device)
    m = load_any_model(a.model, dev)
    size, offsets = m.config.image_size, [float(x) for x in a.offsets.split(",")]
    ts = [int(x) for x in a.timesteps.split(",")]
    alphas = schedule_alphas(m.config.schedule).float().to(dev)
    rec_in, rec_copy, copy, eps = [], [], [], {k: [] for k in ("full", "no_latent", "no_camera")}

    for seed in range(a.scenes):
        r, c2w, K, _, gt = scene_views(seed, offsets, size)
        x = r["rgb"].permute(0, 3, 1, 2).to(dev)
        z0 = m.encode(x * 2 - 1, sample=False)  # the VAE's posterior mode (x scaling factor)
        xr = ((m.decode(z0, clamp=True) + 1) / 2).cpu()
        rec_in.append(float(psnr(xr, x.cpu())[0]))
        rec_copy.append(psnr(xr.expand_as(gt), gt).numpy())
        copy.append(psnr(x.cpu().expand_as(gt), gt).numpy())
        emb, lat = m.embed_image(x * 2 - 1)
        fov = C.fov_from_intrinsics(K[0], size)
        cam = C.camera_embedding(m.config.camera_mode, c2w, c2w, C.depth_quantile_scale(r["depth"][0].double())[None],
                                 fov[None]).to(dev)
        noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed)).to(dev)
        rows = {k: [] for k in eps}
        for t in ts:
            al = alphas[t]
            xt = al.sqrt() * z0 + (1 - al).sqrt() * noise
            tt = torch.tensor([t], device=dev)
            for k, (c, cl) in {"full": (cam, lat), "no_latent": (cam, torch.zeros_like(lat)),
                               "no_camera": (torch.zeros_like(cam), lat)}.items():
                rows[k].append(float(F.mse_loss(m.predict_noise(xt, tt, m.context(emb, c), cl).float(), noise.float())))
        for k in eps:
            eps[k].append(rows[k])
        print(f"scene {seed}: VAE {rec_in[-1]:.2f} dB; eps MSE at t={ts}: full {np.round(rows['full'], 4)} "
              f"no latent {np.round(rows['no_latent'], 4)}", flush=True)
    res = {"model": a.model, "scenes": a.scenes, "offsets": offsets, "timesteps": ts,
           "vae_recon_psnr": {"mean": float(np.mean(rec_in)), "min": float(np.min(rec_in)), "max": float(np.max(rec_in))},
           "psnr_copy": dict(zip(map(str, offsets), np.mean(copy, 0).tolist())),
           "psnr_recon_copy": dict(zip(map(str, offsets), np.mean(rec_copy, 0).tolist())),
           "eps_mse_0deg": {k: dict(zip(map(str, ts), np.mean(v, 0).tolist())) for k, v in eps.items()}}
    print(json.dumps(res, indent=2))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
