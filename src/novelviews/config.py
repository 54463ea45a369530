"""The one config system: typed dataclasses, YAML presets, dotted overrides.

* A config is a (frozen-free) ``@dataclass`` tree; the dataclass *is* the schema and
  its field docstrings/comments are the documentation.
* :func:`from_dict` builds a config from plain data, strictly: an unknown key or a
  value of the wrong type raises :class:`~novelviews.errors.ConfigError` naming the
  dotted key.
* Presets are YAML files, either a path or a name in the package's ``configs/``
  folder (``zeronvs``, ``zero123``, ``demo``, ``tiny``...). A preset may be partial.
* Overrides are ``key.sub=value`` strings; values are parsed as YAML scalars/lists.
* :func:`save_config` writes the resolved config next to every output.
* Renamed keys keep working: a dataclass lists its old names in ``RENAMED`` (old key -> new
  key) and old values in ``RENAMED_VALUES`` (key -> {old value: new value}); each is read under
  its new name with a one-line :class:`RenamedKeyWarning` (the table: README.md, "Renamed config keys").

No global state: every function takes and returns config objects.
"""

from __future__ import annotations

import dataclasses
import types
import warnings
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError

T = TypeVar("T")

PRESET_DIR = Path(__file__).resolve().parent / "configs"


class RenamedKeyWarning(FutureWarning):
    """A config key or value under its old name: read under the new one, which the message names."""


# --------------------------------------------------------------------------- helpers


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it (lists -> tuples...)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config key '{key}': {value!r} is not a {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans
            for word in (("off", "no", "false") if value is False else ("on", "yes", "true")):
                if word in choices:
                    value = word
                    break
        if value not in choices or isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
            raise ConfigError(
                f"config key '{key}': {value!r} is not one of {', '.join(repr(c) for c in choices)}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    f"config key '{key}': expected {len(args)} values, got {len(value)}"
                )
            items = [_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            inner = args[0] if args else Any
            items = [_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else list(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {
            _convert(k, kt, f"{key}.{k}"): _convert(v, vt, f"{key}.{k}") for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"config key '{key}': expected null, got {value!r}")
    raise ConfigError(f"config key '{key}': unsupported annotation {_type_name(tp)}")


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, include_extras=False)


def _renamed_level(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``data`` with the old key names and values of ``cls`` (its ``RENAMED`` / ``RENAMED_VALUES``)
    replaced by the new ones, one :class:`RenamedKeyWarning` each; old and new name together is
    an error (which one was meant is unclear)."""
    keys: dict[str, str] = getattr(cls, "RENAMED", {})
    values: dict[str, dict[Any, Any]] = getattr(cls, "RENAMED_VALUES", {})
    if not keys and not values:
        return data

    def dotted(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    out: dict[str, Any] = {}
    for key, value in data.items():
        new = keys.get(key)
        if new is not None:
            if new in data:
                raise ConfigError(f"config keys '{dotted(key)}' and '{dotted(new)}' are one setting ('{key}' is "
                                  f"its old name): keep only '{dotted(new)}'")
            warnings.warn(f"config key '{dotted(key)}' is now '{dotted(new)}' (the old name still works)",
                          RenamedKeyWarning, stacklevel=2)
            key = new
        out[key] = value
    for key, table in values.items():
        value = out.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value in table:
            warnings.warn(f"config value {dotted(key)}={value} is now {dotted(key)}={table[value]} "
                          f"(the old value still works)", RenamedKeyWarning, stacklevel=2)
            out[key] = table[value]
    return out


def _nested_dataclass(tp: Any) -> type | None:
    """The dataclass of a field annotated ``C`` or ``Optional[C]``, else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if get_origin(tp) in (Union, types.UnionType):
        found = [a for a in get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def renamed_keys(cls: type, data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``data`` (plain config data for ``cls``, possibly partial) with every old key name and
    value replaced by the new one, at every level; warns once per old name (see module doc)."""
    if not isinstance(data, dict):
        return data
    out = _renamed_level(cls, data, prefix)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        sub = _nested_dataclass(hints.get(f.name))
        if sub is not None and isinstance(out.get(f.name), dict):
            out[f.name] = renamed_keys(sub, out[f.name], f"{prefix}.{f.name}" if prefix else f.name)
    return out


# --------------------------------------------------------------------------- public API


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build ``cls`` from plain data; unknown keys and wrong types raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = _renamed_level(cls, dict(data or {}), prefix)
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"unknown config key '{where}' (valid keys here: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for name in names:
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-data (YAML-safe) form of a config; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (``update`` wins); used to layer presets."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=3"`` -> (["a", "b"], 3). Values are parsed as YAML (``[1,2]``, ``true``...)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
        if isinstance(value, str):  # YAML 1.1 reads "4e-4" as a string; numbers win here
            try:
                value = float(raw) if any(c in raw for c in ".eE") or "inf" in raw.lower() else int(raw)
            except ValueError:
                pass
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value ({exc.__class__.__name__})")
    return key.split("."), value


def _set_path(out: dict[str, Any], parts: list[str], value: Any, what: str) -> None:
    node = out
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{what} conflicts with an earlier override")
    node[parts[-1]] = value


def overrides_to_dict(overrides: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in overrides:
        parts, value = parse_override(text)
        _set_path(out, parts, value, f"override {text!r}")
    return out


def nest_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": None}`` -> ``{"a": {"b": 1}}`` (``None`` values are left out): typed bases
    such as a preset's settings (``nerf.distill.preset_settings``) and CLI shortcuts, ready for :func:`load`'s ``base``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is not None:
            _set_path(out, key.split("."), value, f"key '{key}'")
    return out


def flatten_dotted(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`nest_dotted`: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (nested dicts become
    dotted keys; every other value is a leaf)."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            out.update(flatten_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
    return data


def preset_path(name: str | Path) -> Path:
    """A preset name (``demo``) or a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = PRESET_DIR / f"{name}.yaml"
    if candidate.exists():
        return candidate
    names = ", ".join(sorted(x.stem for x in PRESET_DIR.glob("*.yaml")))
    raise ConfigError(f"no preset or YAML file '{name}' (bundled presets: {names})")


def load(
    cls: type[T],
    base: dict[str, Any] | None = None,
    files: list[str | Path] | None = None,
    overrides: list[str] | None = None,
) -> T:
    """Layer: dataclass defaults < ``base`` < each YAML file < dotted overrides (old key names
    are renamed within each layer, so an old name in a file and a new one on the command line
    are the same setting and the later layer wins)."""
    return from_dict(cls, layered(cls, base, files, overrides))


def layered(cls: type, base: dict[str, Any] | None = None, files: list[str | Path] | None = None,
            overrides: list[str] | None = None) -> dict[str, Any]:
    """The nested settings :func:`load` builds ``cls`` from, before any defaults: ``base`` < each
    YAML file < dotted overrides, old key names renamed within each layer."""
    data: dict[str, Any] = renamed_keys(cls, dict(base or {}))
    for f in files or []:
        data = merge(data, renamed_keys(cls, read_yaml(preset_path(f))))
    return merge(data, renamed_keys(cls, overrides_to_dict(list(overrides or []))))


def replace(obj: T, overrides: list[str] | dict[str, Any]) -> T:
    """A copy of ``obj`` with dotted overrides applied (strictly checked)."""
    upd = renamed_keys(type(obj), overrides if isinstance(overrides, dict) else overrides_to_dict(overrides))
    return from_dict(type(obj), merge(to_dict(obj), upd))


def dump(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def save_config(obj: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    from .io.runs import atomic_write_text

    return atomic_write_text(Path(path), dump(obj))


def check_range(key: str, value: float, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False) -> None:
    """Raise ConfigError if ``value`` is outside [lo, hi] (or (lo, hi] if lo_open)."""
    bad = False
    if value != value:  # NaN
        bad = True
    if lo is not None and (value < lo or (lo_open and value == lo)):
        bad = True
    if hi is not None and value > hi:
        bad = True
    if bad:
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        br = "(" if lo_open else "["
        raise ConfigError(f"config key '{key}' = {value!r} is out of range {br}{lo_s}, {hi_s}]")


__all__ = [
    "from_dict",
    "to_dict",
    "merge",
    "load",
    "replace",
    "dump",
    "save_config",
    "read_yaml",
    "preset_path",
    "overrides_to_dict",
    "parse_override",
    "check_range",
    "renamed_keys",
    "RenamedKeyWarning",
]
