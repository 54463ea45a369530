"""Cameras: conventions, intrinsics, look-at, paths, relative-pose embeddings, nearest cameras.

Conventions (see docs/ARCHITECTURE.md):

* ``c2w`` is a 4x4 camera-to-world matrix with **OpenGL camera axes** (x right, y up,
  the camera looks along -z) unless a function's name says ``opencv``. OpenCV axes are
  x right, y down, z forward; the two differ by flipping the camera's y and z axes.
* ``K`` is a 3x3 pinhole matrix in pixels, pixel (i, j) centred at (i + 0.5, j + 0.5).
* ``fov`` is the vertical field of view in radians.
* Spherical coordinates (z-up world, as the reference's single-image setup): a point at
  elevation ``e``, azimuth ``a``, radius ``r`` is ``r * (cos e cos a, cos e sin a, sin e)``.

All functions are batched over leading dimensions and work in float64 by default
(poses are small; precision is free). Inputs may be numpy arrays or tensors.

The names below are the package's interface (``from novelviews import cameras as C``);
each lives in the module of its one job:

* :mod:`.poses` - validation, OpenGL / OpenCV conversion, inversion, look-at, spherical
  placement and orbits about the vertical;
* :mod:`.intrinsics` - pinhole ``K`` from fovs or focal lengths and back, pixel rays;
* :mod:`.embeddings` - 3DoF and 6DoF+1 camera embeddings, the depth-quantile scene scale;
* :mod:`.nearest` - pose distances, k-nearest cameras, a scale from the camera layout;
* :mod:`.paths` - camera paths around one input camera;
* :mod:`.path_files` - camera path JSON files (read and write).
"""

from __future__ import annotations

from .embeddings import (
    EMBEDDING_DIMS,
    CameraMode,
    camera_embedding,
    depth_quantile_scale,
    embed_3dof,
    embed_6dof,
    embedding_dim,
)
from .intrinsics import fov_from_intrinsics, intrinsics_from_focal, intrinsics_from_fov, ray_directions, validate_intrinsics
from .nearest import nearest_cameras, nearest_point_to_axes, pose_distance, rotation_angle, scene_scale_from_cameras
from .path_files import cameras_to_json, load_path_json
from .paths import PATH_KINDS, make_path
from .poses import (
    camera_on_sphere,
    cartesian_to_spherical,
    invert_pose,
    look_at,
    opencv_to_opengl,
    opengl_to_opencv,
    orbit_about_vertical,
    spherical_to_cartesian,
    validate_poses,
)

__all__ = [
    "CameraMode", "EMBEDDING_DIMS", "PATH_KINDS",
    "validate_poses", "validate_intrinsics", "opencv_to_opengl", "opengl_to_opencv", "invert_pose",
    "intrinsics_from_fov", "intrinsics_from_focal", "fov_from_intrinsics", "ray_directions",
    "look_at", "spherical_to_cartesian", "cartesian_to_spherical", "camera_on_sphere", "orbit_about_vertical",
    "embedding_dim", "embed_3dof", "embed_6dof", "depth_quantile_scale", "camera_embedding",
    "rotation_angle", "pose_distance", "nearest_cameras", "scene_scale_from_cameras", "nearest_point_to_axes",
    "make_path", "load_path_json", "cameras_to_json",
]
