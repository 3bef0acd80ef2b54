"""Run imagededup's PHash on a folder of images; print one JSON line (for ``dedupe_index.py``).

Runs in a Python environment that has imagededup (which needs torch and torchvision, so it is
not one of the project's dependencies); ``dedupe_index.py --imagededup-python PATH`` calls it:

    python benchmarks/imagededup_phash.py FOLDER DISTANCE

Prints ``{"seconds": {"encode": ..., "search": ...}, "duplicates": {file: [file, ...]}}``.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    """Encode every image of the folder with PHash, search within the distance, print JSON."""
    from imagededup.methods import PHash  # type: ignore[import-not-found]

    folder, distance = sys.argv[1], int(sys.argv[2])
    hasher = PHash(verbose=False)
    start = time.perf_counter()
    encodings = hasher.encode_images(image_dir=folder)
    encoded = time.perf_counter()
    duplicates = hasher.find_duplicates(
        encoding_map=encodings, max_distance_threshold=distance, scores=False
    )
    searched = time.perf_counter()
    seconds = {"encode": round(encoded - start, 3), "search": round(searched - encoded, 4)}
    print(json.dumps({"seconds": seconds, "duplicates": duplicates}))


if __name__ == "__main__":
    main()
