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
