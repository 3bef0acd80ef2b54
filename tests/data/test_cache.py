"""The tensor cache: decoded once by a pool, incremental, failures reported, read from memmaps."""

from __future__ import annotations

import hashlib
import io
import os
import re
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skillmaker.data.cache import (
    TensorCache,
    build_cache,
    load_normalisation,
    normalisation,
    save_normalisation,
)
from skillmaker.data.cache import writer as cache_module
from skillmaker.data.images import EMPTY, NOT_AN_IMAGE, TRUNCATED, decode_file
from skillmaker.errors import UserError

H, W, C = 16, 12, 3
MAX_PIXELS = 10_000_000


def _photo(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """Give a small RGB picture with structure (gradients and a block), different per seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 6 + seed * 7, y * 8 + seed, (x + y) * 3], axis=-1) % 256
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    pixels[top : top + 8, left : left + 8] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels.astype(np.uint8), mode="RGB")


def _save(image: Image.Image, path: Path, **options: object) -> tuple[str, Path]:
    """Give the (content hash, path) of an image saved to a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)  # type: ignore[arg-type]
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def _write(path: Path, data: bytes) -> tuple[str, Path]:
    """Give the (content hash, path) of raw bytes written to a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), path


@pytest.fixture
def photos(tmp_path: Path) -> list[tuple[str, Path]]:
    """Give ten distinct JPEG and PNG photos of different sizes as (hash, path)."""
    items = []
    for i in range(10):
        image = _photo(i, size=(40 + i, 30 + 2 * i))
        suffix = "jpg" if i % 2 else "png"
        items.append(_save(image, tmp_path / "images" / f"{i}.{suffix}"))
    return items


def _build(items: list[tuple[str, Path]], root: Path, workers: int = 1, **kw: int) -> object:
    return build_cache(
        items, root, height=H, width=W, channels=C, max_pixels=MAX_PIXELS, workers=workers, **kw
    )


def _open(root: Path) -> TensorCache:
    return TensorCache.open(root, H, W, C)


def test_a_pool_of_workers_builds_the_same_bytes_as_one_process(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    # Three images per shard, so the pool's chunks land in several shard files.
    shard_bytes = 3 * H * W * C
    _build(photos, tmp_path / "one", workers=1, shard_bytes=shard_bytes)
    _build(photos, tmp_path / "two", workers=2, shard_bytes=shard_bytes)
    one, two = _open(tmp_path / "one"), _open(tmp_path / "two")
    hashes = [sha for sha, _ in photos]
    assert np.array_equal(one.read(one.rows(hashes)), two.read(two.rows(hashes)))
    files_one = sorted(p.name for p in one.folder.glob("shard-*"))
    files_two = sorted(p.name for p in two.folder.glob("shard-*"))
    assert files_one == files_two
    assert len(files_one) == 4
    for name in files_one:
        assert (one.folder / name).read_bytes() == (two.folder / name).read_bytes()


def test_cached_images_equal_a_direct_decode_in_any_order(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    _build(photos, tmp_path / "cache", workers=2, shard_bytes=4 * H * W * C)
    cache = _open(tmp_path / "cache")
    assert len(cache) == len(photos)
    wanted = [photos[i] for i in (9, 0, 4, 4, 7, 1)]
    images = cache.read(cache.rows(sha for sha, _ in wanted))
    assert images.dtype == np.uint8
    assert images.shape == (len(wanted), H, W, C)
    for image, (_, path) in zip(images, wanted, strict=True):
        assert np.array_equal(image, decode_file(path, H, W, C, MAX_PIXELS))


def test_shards_are_plain_npy_files_numpy_can_memory_map(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    built = build_cache(photos, tmp_path, height=H, width=W, channels=C, max_pixels=MAX_PIXELS)
    (shard,) = built.folder.glob("shard-*.npy")
    mapped = np.load(shard, mmap_mode="r")
    assert mapped.dtype == np.uint8
    assert mapped.shape == (len(photos), H, W, C)
    assert np.array_equal(mapped[3], decode_file(photos[3][1], H, W, C, MAX_PIXELS))
    assert built.folder.name == f"{H}x{W}x{C}"


def test_a_later_build_decodes_only_new_images(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    first = build_cache(
        photos[:6], tmp_path / "c", height=H, width=W, channels=C, max_pixels=MAX_PIXELS
    )
    assert first.decoded == [sha for sha, _ in photos[:6]]
    shards_before = {p.name: p.read_bytes() for p in first.folder.glob("shard-*")}
    # Overwrite the files already cached: decoding them again would now fail.
    for _, path in photos[:6]:
        path.write_bytes(b"")
    second = _build(photos, tmp_path / "c", workers=2)
    assert isinstance(second, cache_module.CacheBuild)
    assert second.failed == {}
    assert second.decoded == [sha for sha, _ in photos[6:]]
    assert second.reused == 6
    for name, data in shards_before.items():
        assert (first.folder / name).read_bytes() == data
    cache = _open(tmp_path / "c")
    assert len(cache) == 10
    new = cache.read(cache.rows([sha for sha, _ in photos[6:]]))
    for image, (_, path) in zip(new, photos[6:], strict=True):
        assert np.array_equal(image, decode_file(path, H, W, C, MAX_PIXELS))
    third = _build(photos, tmp_path / "c")
    assert isinstance(third, cache_module.CacheBuild)
    assert third.decoded == []
    assert third.reused == 10


def test_the_same_content_under_two_names_is_decoded_once(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    sha, path = photos[0]
    copy = tmp_path / "copy.png"
    copy.write_bytes(path.read_bytes())
    built = build_cache(
        [(sha, path), (sha, copy), photos[1]],
        tmp_path / "c",
        height=H,
        width=W,
        channels=C,
        max_pixels=MAX_PIXELS,
    )
    assert built.decoded == [sha, photos[1][0]]
    assert len(_open(tmp_path / "c")) == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_files_are_reported_with_their_reason_and_not_cached(
    photos: list[tuple[str, Path]], tmp_path: Path, workers: int
) -> None:
    buffer = io.BytesIO()
    _photo(99, size=(64, 64)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    bad = {
        _write(tmp_path / "bad" / "empty.jpg", b""): EMPTY,
        _write(tmp_path / "bad" / "notes.jpg", b"shopping list: eggs, milk"): NOT_AN_IMAGE,
        _write(tmp_path / "bad" / "half.jpg", jpeg[: len(jpeg) // 2]): TRUNCATED,
    }
    items = [photos[0], *bad, photos[1]]
    built = _build(items, tmp_path / "c", workers=workers)
    assert isinstance(built, cache_module.CacheBuild)
    assert built.failed == {sha: reason for (sha, _), reason in bad.items()}
    assert built.decoded == [photos[0][0], photos[1][0]]
    cache = _open(tmp_path / "c")
    assert len(cache) == 2
    for sha, _ in bad:
        assert sha not in cache
    assert np.array_equal(
        cache.read(cache.rows([photos[1][0]]))[0], decode_file(photos[1][1], H, W, C, MAX_PIXELS)
    )
    # Failures are not remembered as cached: the next build tries them again.
    again = _build(items, tmp_path / "c", workers=workers)
    assert isinstance(again, cache_module.CacheBuild)
    assert set(again.failed) == {sha for sha, _ in bad}
    assert again.reused == 2


def test_a_build_where_every_image_fails_leaves_an_empty_cache(tmp_path: Path) -> None:
    items = [_write(tmp_path / "e.jpg", b""), _write(tmp_path / "t.txt", b"text")]
    built = _build(items, tmp_path / "c")
    assert isinstance(built, cache_module.CacheBuild)
    assert set(built.failed.values()) == {EMPTY, NOT_AN_IMAGE}
    assert len(_open(tmp_path / "c")) == 0
    assert list(built.folder.glob("shard-*")) == []


def test_unusual_image_modes_are_converted_before_caching(tmp_path: Path) -> None:
    cyan_cmyk = Image.new("CMYK", (20, 20), (255, 0, 0, 0))
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([200, 30, 10] + [0, 0, 0] * 255)
    see_through = Image.new("RGBA", (20, 20), (0, 0, 255, 0))
    sixteen_bit = Image.fromarray(np.full((20, 20), 65535, dtype=np.uint16))
    grey_alpha = Image.new("LA", (20, 20), (0, 255))
    items = [
        _save(cyan_cmyk, tmp_path / "cmyk.jpg", quality=100),
        _save(palette, tmp_path / "palette.png"),
        _save(see_through, tmp_path / "alpha.png"),
        _save(sixteen_bit, tmp_path / "16bit.png"),
        _save(grey_alpha, tmp_path / "la.png"),
    ]
    built = _build(items, tmp_path / "c", workers=2)
    assert isinstance(built, cache_module.CacheBuild)
    assert built.failed == {}
    cache = _open(tmp_path / "c")
    cmyk, pal, alpha, deep, la = cache.read(cache.rows(sha for sha, _ in items))
    assert np.abs(cmyk[H // 2, W // 2].astype(int) - [0, 255, 255]).max() <= 3
    assert pal[H // 2, W // 2].tolist() == [200, 30, 10]
    assert alpha[H // 2, W // 2].tolist() == [255, 255, 255]  # transparent shows as white
    assert deep[H // 2, W // 2].tolist() == [255, 255, 255]  # full 16-bit scale is full 8-bit
    assert la[H // 2, W // 2].tolist() == [0, 0, 0]
    for image, (_, path) in zip((cmyk, pal, alpha, deep, la), items, strict=True):
        assert np.array_equal(image, decode_file(path, H, W, C, MAX_PIXELS))


def test_one_channel_caches_live_apart_from_three_channel_ones(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    _build(photos[:2], tmp_path)
    grey = build_cache(
        photos[:2], tmp_path, height=H, width=W, channels=1, max_pixels=MAX_PIXELS, workers=1
    )
    assert grey.decoded == [sha for sha, _ in photos[:2]]
    images = TensorCache.open(tmp_path, H, W, 1).read([0, 1])
    assert images.shape == (2, H, W, 1)
    assert np.array_equal(images[1], decode_file(photos[1][1], H, W, 1, MAX_PIXELS))


def test_asking_for_an_image_not_cached_names_it(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    _build(photos[:2], tmp_path)
    cache = _open(tmp_path)
    with pytest.raises(KeyError, match="feedface"):
        cache.rows([photos[0][0], "feedface" * 8])
    with pytest.raises(IndexError):
        cache.read([2])


def test_opening_a_cache_that_was_never_built_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no tensor cache"):
        _open(tmp_path)


def test_a_damaged_shard_is_refused_then_rebuilt(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    built = _build(photos[:4], tmp_path, shard_bytes=2 * H * W * C)
    assert isinstance(built, cache_module.CacheBuild)
    damaged = sorted(built.folder.glob("shard-*.npy"))[1]
    with damaged.open("r+b") as handle:
        handle.truncate(100)
    with pytest.raises(UserError, match=re.escape(damaged.name)):
        _open(tmp_path)
    rebuilt = _build(photos[:4], tmp_path)
    assert isinstance(rebuilt, cache_module.CacheBuild)
    assert rebuilt.decoded == [sha for sha, _ in photos[2:4]]
    cache = _open(tmp_path)
    images = cache.read(cache.rows(s for s, _ in photos[:4]))
    for image, (_, path) in zip(images, photos[:4], strict=True):
        assert np.array_equal(image, decode_file(path, H, W, C, MAX_PIXELS))


def test_an_interrupted_build_leaves_the_cache_as_it_was(
    photos: list[tuple[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build(photos[:3], tmp_path)
    index = (tmp_path / f"{H}x{W}x{C}" / "index.json").read_bytes()
    real = cache_module._decode_chunk
    calls = []

    def interrupted(chunk: cache_module._Chunk) -> list[tuple[int, str]]:
        calls.append(chunk)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(chunk)

    monkeypatch.setattr(cache_module, "_decode_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _build(photos, tmp_path, shard_bytes=2 * H * W * C)
    folder = tmp_path / f"{H}x{W}x{C}"
    assert (folder / "index.json").read_bytes() == index
    assert len(list(folder.glob("shard-*"))) == 1
    monkeypatch.setattr(cache_module, "_decode_chunk", real)
    assert len(_open(tmp_path)) == 3
    resumed = _build(photos, tmp_path)
    assert isinstance(resumed, cache_module.CacheBuild)
    assert resumed.decoded == [sha for sha, _ in photos[3:]]


def test_normalisation_equals_numpy_on_the_whole_array(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    _build(photos, tmp_path, shard_bytes=4 * H * W * C)
    cache = _open(tmp_path)
    rows = cache.rows([sha for sha, _ in photos[1:8]])
    whole = cache.read(rows).astype(np.float64)
    mean, std = normalisation(cache, rows, batch=3)
    assert np.allclose(mean, whole.mean(axis=(0, 1, 2)), rtol=0, atol=1e-9)
    assert np.allclose(std, whole.std(axis=(0, 1, 2)), rtol=0, atol=1e-9)
    assert len(mean) == C
    save_normalisation(tmp_path / "normalisation.json", mean, std)
    assert load_normalisation(tmp_path / "normalisation.json") == (mean, std)


def test_normalisation_files_that_do_not_hold_numbers_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "normalisation.json"
    path.write_text('{"mean": [1, 2]}')
    with pytest.raises(UserError, match=r"normalisation\.json"):
        load_normalisation(path)
    path.write_text('{"mean": [1, 2], "std": [3]}')
    with pytest.raises(UserError, match="same number of channels"):
        load_normalisation(path)


def _broken_pool(workers: int) -> ProcessPoolExecutor:
    """Give a pool whose workers die as they start (as in a sandbox that forbids them)."""
    return ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=os._exit, initargs=(3,)
    )


def test_a_build_whose_pool_breaks_finishes_in_one_process(
    photos: list[tuple[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build(photos, tmp_path / "one", workers=1)
    monkeypatch.setattr(cache_module, "_pool", _broken_pool)
    with pytest.warns(RuntimeWarning, match="decoding in one process"):
        built = _build(photos, tmp_path / "two", workers=2)
    assert isinstance(built, cache_module.CacheBuild)
    assert built.failed == {}
    one, two = _open(tmp_path / "one"), _open(tmp_path / "two")
    hashes = [sha for sha, _ in photos]
    assert np.array_equal(one.read(one.rows(hashes)), two.read(two.rows(hashes)))


def test_reads_from_many_threads_with_a_tiny_memory_budget_stay_correct(
    photos: list[tuple[str, Path]], tmp_path: Path
) -> None:
    _build(photos, tmp_path, shard_bytes=3 * H * W * C)
    expected = _open(tmp_path).read(list(range(len(photos))))
    # A budget of one image: the mapped pages are handed back after nearly every read.
    cache = TensorCache.open(tmp_path, H, W, C, resident_bytes=H * W * C)
    rng = np.random.default_rng(0)
    requests = [rng.integers(0, len(photos), 7) for _ in range(200)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(cache.read, requests))
    for rows, images in zip(requests, results, strict=True):
        assert np.array_equal(images, expected[rows])
