"""The tensor cache: every image decoded once into memory-mappable uint8 shards, keyed by content.

The layout on disk and its guarantees are described in ``skillmaker.data.cache.format``; this
package gives its public names (writer, reader, normalisation) in one place.
"""

from skillmaker.data.cache.format import INDEX, cache_folder, default_workers
from skillmaker.data.cache.normalisation import (
    load_normalisation,
    normalisation,
    save_normalisation,
)
from skillmaker.data.cache.reader import RESIDENT_BYTES, TensorCache
from skillmaker.data.cache.writer import SHARD_BYTES, UNREADABLE, CacheBuild, build_cache

__all__ = [
    "INDEX",
    "RESIDENT_BYTES",
    "SHARD_BYTES",
    "UNREADABLE",
    "CacheBuild",
    "TensorCache",
    "build_cache",
    "cache_folder",
    "default_workers",
    "load_normalisation",
    "normalisation",
    "save_normalisation",
]
