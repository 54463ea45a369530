"""Property-based fuzzing of the readers of user files and options: any input gives a result or a
NovelViewsError (one line for the CLI), never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from novelviews import cameras as C  # noqa: E402
from novelviews.errors import NovelViewsError  # noqa: E402

# JSON values, biased towards the shapes the readers look for (lists of 16 numbers, camera dicts)
_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, width=32) | st.text(max_size=5)
_numbers = st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=0, max_size=17)
_matrix = st.lists(st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=3, max_size=5), min_size=3, max_size=5)
_json = st.recursive(_scalars | _numbers | _matrix,
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.sampled_from(["c2w", "transform_matrix", "camera_to_world", "fov", "fov_deg",
                                                        "cameras", "camera_path", "convention", "frames", "x"]),
                                       inner, max_size=4),
                     max_leaves=20)


def _accepts_or_explains(read, data) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.json"
        p.write_text(json.dumps(data))
        try:
            read(p)
        except NovelViewsError as exc:
            assert str(exc) and "\n" not in str(exc)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_camera_path_reader_never_raises_anything_else(data):
    _accepts_or_explains(lambda p: C.load_path_json(p, default_fov=0.8), data)


@pytest.mark.parametrize("data", [{"cameras": "abc"}, [{"c2w": "abc"}], [[[1, 0, 0, 0]] * 4, "x"], [{"c2w": [1] * 16,
                                                                                                   "fov_deg": "wide"}]])
def test_camera_paths_of_strings_are_explained(tmp_path, data):
    """Found by a user: strings where numbers belong raised a TypeError traceback."""
    p = tmp_path / "p.json"
    p.write_text(json.dumps(data))
    with pytest.raises(NovelViewsError, match="camera"):
        C.load_path_json(p, default_fov=0.8)


_transforms = st.fixed_dictionaries(
    {}, optional={"camera_angle_x": _scalars, "fl_x": _scalars, "w": _scalars, "h": _scalars,
                  "frames": st.lists(st.fixed_dictionaries({}, optional={"file_path": _scalars | st.just("img.png"),
                                                                         "transform_matrix": _json}), max_size=3)})


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_transforms | _json)
def test_transforms_json_reader_never_raises_anything_else(data):
    from novelviews.io.datasets import load_transforms

    def read(p: Path):
        q = p.with_name("transforms.json")
        p.rename(q)
        load_transforms(q.parent)

    _accepts_or_explains(read, data)


@settings(max_examples=250, deadline=None)
@given(st.lists(st.text(max_size=30) | st.sampled_from(["seed=abc", "phases.steps=-1", "a.b.c=1", "=", "camera=1",
                                                        "field.bound=[1,2]", "render.chunk=1e99", "loss=x",
                                                        "phases.batch_sizes=[a]", "guidance.t_keyframes=1"]),
                max_size=3))
def test_dotted_overrides_never_raise_anything_else(overrides):
    from novelviews.config import load
    from novelviews.nerf.distill import DistillConfig

    try:
        load(DistillConfig, overrides=overrides).validate()
    except NovelViewsError as exc:
        assert str(exc) and "\n" not in str(exc)


_co3d_frame = st.fixed_dictionaries({}, optional={
    "sequence_name": _scalars, "frame_number": _scalars,
    "image": st.fixed_dictionaries({}, optional={"path": _scalars | st.just("img.png"), "size": _json}),
    "viewpoint": st.fixed_dictionaries({}, optional={"R": _matrix | _json, "T": _numbers | _json,
                                                     "focal_length": _numbers | _json,
                                                     "principal_point": _numbers | _json,
                                                     "intrinsics_format": _scalars}),
    "depth": _json, "mask": _json})


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_co3d_frame, max_size=3) | _json)
def test_co3d_reader_never_raises_anything_else(data):
    from novelviews.io.datasets import load_co3d

    _accepts_or_explains(load_co3d, data)


_re10k_line = st.lists(st.floats(-2, 2, width=32).map(lambda v: f"{v:.4g}") | st.sampled_from(["nan", "inf", "x"]),
                       min_size=17, max_size=20).map(" ".join)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_re10k_line, min_size=0, max_size=3), st.booleans())
def test_re10k_reader_never_raises_anything_else(lines, with_frames):
    from novelviews.io.datasets import load_re10k

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "cam.txt"
        p.write_text("\n".join(["https://example.invalid/v"] + lines) + "\n")
        if with_frames:
            (Path(d) / "frames").mkdir()
        try:
            load_re10k(p)
        except NovelViewsError as exc:
            assert str(exc) and "\n" not in str(exc)
