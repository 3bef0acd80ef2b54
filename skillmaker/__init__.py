"""skillmaker: turn a JSON config into a tested, reported, gated and deployed image classifier."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skillmaker")
except PackageNotFoundError:  # running from a source checkout that was never installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
