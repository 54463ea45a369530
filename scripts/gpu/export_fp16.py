"""Write a trained model folder as the fp16 model folder we ship (docs/DEMO_MODEL.md).

    python scripts/gpu/export_fp16.py RUN/ldm/model DEST/demo_model
    python scripts/gpu/export_fp16.py RUN/ldm/model DEST/demo_model --decoder-from RUN/dec/model

``--decoder-from``: take the VAE decoder (and post-quant conv) from another model folder, e.g. a
decoder-only fine-tune (``vae_train=decoder``), which keeps the latent space of the LDM.
"""

import argparse

import torch

from novelviews.model.checkpoints import load_model

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("dest")
ap.add_argument("--decoder-from", default=None)
a = ap.parse_args()
model, _ = load_model(a.model)
if a.decoder_from:
    dec, _ = load_model(a.decoder_from)
    model.vae.decoder.load_state_dict(dec.vae.decoder.state_dict())
    model.vae.post_quant_conv.load_state_dict(dec.vae.post_quant_conv.state_dict())
model.save_pretrained(a.dest, overwrite=True, dtype=torch.float16)
print(f"{a.model} -> {a.dest} (fp16)" + (f", decoder from {a.decoder_from}" if a.decoder_from else ""),
      {k: v for k, v in model.num_parameters().items()})
