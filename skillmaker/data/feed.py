"""The input pipeline: uint8 batches read from the memory-mapped tensor cache, reshuffled per epoch.

The pipeline moves bytes only. Casting, augmentation and normalisation are Keras layers inside the
model, where they run on the accelerator; doing them here would put the CPU back on the critical
path that the cache took it off.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import keras
import numpy as np

from skillmaker.data.cache import TensorCache


def epoch_order(count: int, seed: int, epoch: int, *, shuffle: bool = True) -> np.ndarray:
    """Give the order in which an epoch visits ``count`` examples: the same for the same seed."""
    if not shuffle:
        return np.arange(count, dtype=np.int64)
    # Seeding from (seed, epoch) rather than advancing one generator lets a resumed run replay
    # exactly the order an uninterrupted run would have had at that epoch.
    return np.random.default_rng([seed, epoch]).permutation(count).astype(np.int64)


class CacheBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """Batches of (uint8 NHWC images, int32 labels) read from a tensor cache, for ``model.fit``.

    Every epoch visits each row exactly once, in an order drawn from ``(seed, epoch)`` that
    decides which rows share a batch; inside a batch they come in cache order. The last batch may
    be smaller.

    Batches are prefetched in the background by Keras: with ``workers`` > 1 by that many threads
    feeding a queue of ``max_queue_size`` batches; with 1, under TensorFlow, by ``tf.data``'s
    prefetch thread. Threads suffice because a batch is a memory copy, which numpy does without
    the GIL. The default is 1 under TensorFlow (Keras's thread queue costs a pause at every
    epoch end that ``tf.data`` does not) and 2 under other backends, which prefetch only
    through that queue.

    Which epoch a request belongs to is counted per batch index (the k-th request for batch i
    since training began is epoch ``initial_epoch + k``), not read from a "current epoch" that
    Keras's epoch hooks would move: Keras prefetches the next epoch's first batches before it
    calls those hooks, and would otherwise get them in the old order. A resumed run passes the
    epoch it resumes at as ``initial_epoch`` (as it does to ``fit``). Keras reads a batch or two
    ahead past the last epoch, so before another ``fit`` call ``start_at(epoch)`` resets the count.

    Pass ``shuffle=False`` to ``fit``: the order is this dataset's job, and ``fit``'s own shuffle
    would reorder the batches again from Python's global random state.
    """

    def __init__(
        self,
        cache: TensorCache,
        rows: Sequence[int] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        initial_epoch: int = 0,
        workers: int | None = None,
        max_queue_size: int = 8,
    ) -> None:
        if workers is None:
            workers = 1 if keras.backend.backend() == "tensorflow" else 2
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.cache = cache
        self.row_ids = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        if len(self.row_ids) != len(self.labels):
            raise ValueError(f"{len(self.row_ids)} rows but {len(self.labels)} labels")
        if len(self.row_ids) == 0:
            raise ValueError("no rows to make batches of")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.initial_epoch = initial_epoch
        self._lock = threading.Lock()
        self._training = False
        self._served = np.zeros(len(self), dtype=np.int64)
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        """Give the number of batches in an epoch, the last partial one included."""
        return math.ceil(len(self.row_ids) / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Give the positions (into ``rows``) in the order epoch ``epoch`` visits them."""
        with self._lock:
            found = self._orders.get(epoch)
            if found is None:
                found = epoch_order(len(self.row_ids), self.seed, epoch, shuffle=self.shuffle)
                # Two epochs can be in flight at a boundary; older orders are not needed again.
                self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
                self._orders[epoch] = found
            return found

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Give batch ``index`` of epoch ``epoch`` as (uint8 images, int32 labels)."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
        picks = self.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        rows = self.row_ids[picks]
        # Which rows share a batch is the shuffle; their order inside it means nothing to
        # training, so they are read in file order, which the cache copies fastest.
        ascending = np.argsort(rows, kind="stable")
        return self.cache.read(rows[ascending]), self.labels[picks[ascending]]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Give the next batch ``index`` Keras asks for: of the epoch that request belongs to."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
        with self._lock:
            epoch = self.initial_epoch
            # Before training starts Keras reads a batch or two to learn the shapes; not counted.
            if self._training:
                epoch += int(self._served[index])
                self._served[index] += 1
        return self.batch(epoch, index)

    def on_epoch_begin(self) -> None:
        """Start counting requests as training epochs (Keras calls this as each epoch begins)."""
        self._training = True

    def start_at(self, epoch: int) -> None:
        """Make the next ``fit`` start at ``epoch``: resumed runs and later training phases.

        Training calls this before each ``fit`` so one object serves them all: the requests
        counted so far (and the shape probes of the next ``fit``) are forgotten.
        """
        with self._lock:
            self.initial_epoch = epoch
            self._training = False
            self._served[:] = 0
