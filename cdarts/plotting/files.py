"""Image files of the plots: the formats, and writing a figure atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cdarts.errors import ConfigError
from cdarts.io import atomic_write

FORMATS = ("png", "svg", "pdf")


def plot_format(path: str | Path) -> str:
    """The image format named by ``path``'s suffix; anything but .png, .svg, .pdf raises."""
    suffix = Path(path).suffix
    if suffix.lstrip(".").lower() not in FORMATS:
        raise ConfigError(f"cannot plot to {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; "
                          f"use one of {', '.join('.' + f for f in FORMATS)}")
    return suffix.lstrip(".").lower()


def save_figure(fig: Any, path: str | Path, dpi: float = 100) -> Path:
    """Write a matplotlib figure to ``path`` (its suffix names the format) atomically, so a reader never sees half a
    file even when the plot is redrawn every epoch; returns the path."""
    fmt = plot_format(path)
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))
