"""novelviews: zero-shot novel view synthesis of real scenes.

View-conditioned latent diffusion (Zero-1-to-3 3DoF and ZeroNVS 6DoF+1 camera
conditioning), novel views along camera paths, nearest-anchor multi-view generation,
evaluation, SDS distillation into NeRFs, and training. See docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
