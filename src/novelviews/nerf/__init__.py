"""NeRF geometry for distillation: hash-grid field, samplers, volume renderer, mesh export.

World coordinates are scene units; cameras are OpenGL camera-to-world (see
docs/ARCHITECTURE.md). Import-light: heavy optional packages (tinycudann, PyMCubes,
trimesh) are imported only inside the functions that need them.
"""

from .anchors import AnchoringConfig, anchor_cameras, choose_conditions, nearest_condition
from .distill import DistillConfig, load_run, run_distill, run_export
from .encoding import HashGridConfig, HashGridEncoding, hash_encode_reference
from .export import export_mesh, extract_mesh
from .field import Background, BackgroundConfig, NeRFField, NeRFFieldConfig, contract
from .render import get_rays, render_image, render_rays, render_weights, volume_render
from .guidance import GuidanceConfig, sds_gradient, sds_loss_from_grad, timestep_range
from .sampler import ProposalSampler, SamplerConfig, UniformSampler, interlevel_loss, make_sampler

__all__ = [
    "HashGridConfig",
    "HashGridEncoding",
    "hash_encode_reference",
    "NeRFFieldConfig",
    "NeRFField",
    "BackgroundConfig",
    "Background",
    "contract",
    "SamplerConfig",
    "UniformSampler",
    "ProposalSampler",
    "make_sampler",
    "interlevel_loss",
    "render_weights",
    "volume_render",
    "get_rays",
    "render_rays",
    "render_image",
    "extract_mesh",
    "export_mesh",
    "GuidanceConfig",
    "sds_gradient",
    "sds_loss_from_grad",
    "timestep_range",
    "AnchoringConfig",
    "anchor_cameras",
    "nearest_condition",
    "choose_conditions",
    "DistillConfig",
    "run_distill",
    "run_export",
    "load_run",
]
