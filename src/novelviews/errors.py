"""User-facing errors.

Every problem caused by the user's input (a missing file, a malformed pose, a
corrupt checkpoint, an out-of-range option) is raised as a subclass of
:class:`NovelViewsError`. The message names the problem *and* the fix; the CLI
prints it as one line, without a traceback.
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so it prints as one line."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


class NovelViewsError(ValueError):
    """Base class of all errors that are the user's to fix.

    The message is kept on one line: a file or sequence name that holds a line break (or another
    control character) is shown escaped, as ``repr`` would show it.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(str(message)), *args)


class ConfigError(NovelViewsError):
    """Unknown key, wrong type or out-of-range value in a config or override."""


class CameraError(NovelViewsError):
    """A camera pose or intrinsics matrix is malformed (shape, NaN, not a rotation)."""


class ImageError(NovelViewsError):
    """An input image is missing, unreadable or of an unsupported kind."""


class DatasetError(NovelViewsError):
    """A multi-view dataset is missing files or is in an unknown layout."""


class CheckpointError(NovelViewsError):
    """A checkpoint is missing, corrupt, unsafe or of another architecture."""


class TrainingError(NovelViewsError):
    """Training went wrong in a way the settings can fix (e.g. the loss diverged to NaN)."""


class MissingDependencyError(NovelViewsError):
    """An optional package is needed for the feature asked for."""


def require(module: str, feature: str, extra: str | None = None):
    """Import an optional dependency lazily, or explain how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        hint = f"pip install 'novelviews[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(
            f"{feature} needs the optional package '{module}', which is not installed: run `{hint}`"
        ) from exc
