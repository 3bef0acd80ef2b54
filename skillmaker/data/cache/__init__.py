"""The tensor cache: every image decoded once into memory-mappable uint8 shards, keyed by content.

Layout under the cache root (``Workspace.tensor_cache``), one folder per input shape::

    <root>/<height>x<width>x<channels>/
        index.json            shards in order, with the content hash of each row (null: a hole)
        shard-000000.npy      uint8 array (rows, height, width, channels), never rewritten
        shard-000001.npy      ... appended by later builds, which decode only new hashes

A global row id is a shard's first row (the rows of the shards before it) plus the row inside it.
Shards are written by worker processes straight into a preallocated file, so decoded pixels never
travel between processes; a row whose image failed to decode stays a hole no hash points to. The
index is replaced atomically after the shards are complete, so a reader never sees a partial shard.
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
