from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from novelviews import config as cfg
from novelviews.errors import ConfigError


@dataclass
class Inner:
    steps: int = 50
    scale: float = 3.0
    kind: Literal["ddim", "euler", "off"] = "ddim"
    sizes: tuple[int, ...] = (1, 2)

    def validate(self):
        cfg.check_range("inner.steps", self.steps, 1, 1000)


@dataclass
class Outer:
    name: str = "x"
    seed: Optional[int] = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_round_trip(tmp_path):
    c = cfg.from_dict(Outer, {})
    assert c == Outer()
    assert cfg.replace(c, ["inner.scale=4e-4"]).inner.scale == 4e-4
    assert cfg.replace(c, ["inner.kind=off"]).inner.kind == "off"  # not YAML's False
    c2 = cfg.replace(c, ["inner.steps=20", "inner.scale=2", "seed=3", "inner.sizes=[4,5,6]", "flag=true"])
    assert c2.inner.steps == 20 and c2.inner.scale == 2.0 and isinstance(c2.inner.scale, float)
    assert c2.seed == 3 and c2.inner.sizes == (4, 5, 6) and c2.flag is True
    p = cfg.save_config(c2, tmp_path / "config.yaml")
    back = cfg.load(Outer, files=[p])
    assert back == c2
    assert yaml.safe_load(p.read_text())["inner"]["sizes"] == [4, 5, 6]


def test_layering_order(tmp_path):
    (tmp_path / "a.yaml").write_text("inner:\n  steps: 10\n  scale: 1.5\n")
    c = cfg.load(Outer, base={"name": "base", "inner": {"steps": 5}}, files=[tmp_path / "a.yaml"], overrides=["inner.scale=7"])
    assert (c.name, c.inner.steps, c.inner.scale) == ("base", 10, 7.0)


@pytest.mark.parametrize(
    "override,match",
    [
        ("inner.stepz=3", "unknown config key 'inner.stepz'"),
        ("inner.steps=abc", "'inner.steps': expected an integer"),
        ("inner.steps=2.5", "'inner.steps': expected an integer"),
        ("inner.kind=plms", "'inner.kind'.*not one of"),
        ("flag=3", "'flag': expected true/false"),
        ("inner.steps=0", "'inner.steps' = 0 is out of range"),
        ("inner", "must look like key.sub=value"),
        ("inner.sizes=[1, x]", r"'inner.sizes\[1\]'"),
    ],
)
def test_errors_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        cfg.replace(Outer(), [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no preset or YAML file"):
        cfg.load(Outer, files=["nope"])
    (tmp_path / "b.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        cfg.load(Outer, files=[tmp_path / "b.yaml"])
    (tmp_path / "c.yaml").write_text("inner: {steps: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        cfg.load(Outer, files=[tmp_path / "c.yaml"])


@dataclass
class Renamed:
    """A config whose keys and values were renamed: ``old_inner`` -> ``inner``, ``speed`` values."""

    speed: Literal["slow", "fast"] = "slow"
    inner: Inner = field(default_factory=Inner)
    RENAMED = {"old_inner": "inner"}  # class attributes, not fields (no annotation)
    RENAMED_VALUES = {"speed": {"turbo": "fast", 1: "fast"}}


def test_renamed_keys_and_values_load_with_a_warning(tmp_path):
    new = cfg.load(Renamed, overrides=["inner.steps=7", "speed=fast"])
    with pytest.warns(cfg.RenamedKeyWarning) as got:
        old = cfg.load(Renamed, overrides=["old_inner.steps=7", "speed=turbo"])
    assert old == new and old.inner.steps == 7 and old.speed == "fast"
    messages = sorted(str(w.message) for w in got)
    assert messages == ["config key 'old_inner' is now 'inner' (the old name still works)",
                        "config value speed=turbo is now speed=fast (the old value still works)"]
    # an old name in a file and the new one on the command line: one setting, the later layer wins
    (tmp_path / "old.yaml").write_text("old_inner:\n  steps: 3\n  scale: 2.5\n")
    with pytest.warns(cfg.RenamedKeyWarning):
        mixed = cfg.load(Renamed, files=[tmp_path / "old.yaml"], overrides=["inner.steps=9"])
    assert (mixed.inner.steps, mixed.inner.scale) == (9, 2.5)
    with pytest.warns(cfg.RenamedKeyWarning):
        assert cfg.replace(Renamed(), {"old_inner": {"steps": 4}}).inner.steps == 4
    # old and new name in one layer: which one was meant is unclear
    with pytest.raises(ConfigError, match="'old_inner' and 'inner' are one setting"):
        cfg.load(Renamed, overrides=["old_inner.steps=7", "inner.steps=8"])
    # values outside the table still fail as before
    with pytest.raises(ConfigError, match="'speed'.*not one of"):
        cfg.load(Renamed, overrides=["speed=warp"])


def test_product_renames_give_the_same_configs():
    """Each renamed key of the commands (README.md, "Renamed config keys") loads under its old name,
    with a warning, into the config its new name gives; the new names load silently."""
    import warnings

    from novelviews.evaluate import EvalConfig
    from novelviews.nerf.distill import DistillConfig
    from novelviews.train.run import TrainConfig, lightning_precision
    from novelviews.views import ViewsConfig

    cases = [
        (DistillConfig, ["schedule.steps=9", "schedule.batch_sizes=[2,1]", "cameras.widen_fraction=0.5"],
         ["phases.steps=9", "phases.batch_sizes=[2,1]", "sds_cameras.widen_fraction=0.5"]),
        (ViewsConfig, ["sampling.dtype=bf16"], ["sampling.precision=bf16"]),
        (EvalConfig, ["sampling.dtype=fp16"], ["sampling.precision=fp16"]),
        (TrainConfig, ["model=tiny", "precision=bf16-mixed", "synth.scenes=1"],
         ["arch=tiny", "precision=bf16", "synth.scenes=1"]),
        (TrainConfig, ["precision=32-true", "synth.scenes=1"], ["precision=fp32", "synth.scenes=1"]),
        (TrainConfig, ["precision=16-mixed", "synth.scenes=1"], ["precision=fp16", "synth.scenes=1"]),
    ]
    for cls, old, new in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the new names warn about nothing
            want = cfg.load(cls, overrides=new)
        assert want != cls()
        with pytest.warns(cfg.RenamedKeyWarning):
            got = cfg.load(cls, overrides=old)
        assert got == want, (cls.__name__, old)
    assert cfg.load(DistillConfig, overrides=["phases.steps=9"]).phases.steps == 9
    train = cfg.load(TrainConfig, overrides=["synth.scenes=1"])
    assert train.precision == "fp32" and lightning_precision(train) == "32-true"
    assert [lightning_precision(cfg.replace(train, [f"precision={p}"])) for p in ("fp16", "bf16", "bf16-true")] == \
        ["16-mixed", "bf16-mixed", "bf16-true"]
    assert lightning_precision(cfg.replace(train, ["precision=auto", "accelerator=cpu"])) == "32-true"
    with pytest.raises(ConfigError, match="'precision'.*not one of"):
        cfg.load(TrainConfig, overrides=["precision=64-true", "synth.scenes=1"])


def test_precision_words_name_one_dtype():
    import torch

    from novelviews.runtime import PRECISIONS, precision_dtype

    cpu = torch.device("cpu")
    assert PRECISIONS == ("auto", "fp32", "fp16", "bf16")
    assert {precision_dtype(p, cpu) for p in PRECISIONS} == {torch.float32}  # the CPU always runs fp32
    if torch.cuda.is_available():  # pragma: no cover - GPU machines only
        gpu = torch.device("cuda")
        assert precision_dtype("fp16", gpu) == torch.float16 and precision_dtype("bf16", gpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="precision 'fp8' is unknown"):
        precision_dtype("fp8", torch.device("cuda"))


def test_time_calls_ms_runs_warmup_then_times_each_call():
    import time

    import torch

    from novelviews.runtime import time_calls_ms

    calls = []

    def work():
        calls.append(1)
        time.sleep(0.01)

    times = time_calls_ms(work, torch.device("cpu"), warmup=2, repeats=3)
    assert len(calls) == 5 and len(times) == 3
    assert all(9.0 <= t < 1000.0 for t in times)  # milliseconds of a 10 ms sleep
