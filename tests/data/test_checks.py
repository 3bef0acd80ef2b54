"""Image checks: one decode per content, verdicts remembered in the cache."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from PIL import Image

from skillmaker.data import checks, images
from skillmaker.data.checks import check_files, check_image
from tests.data.pictures import encode, picture, png


def test_a_usable_image_gets_a_64_bit_perceptual_hash() -> None:
    verdict = check_image(png(1), 10**8)
    assert verdict.usable
    assert verdict.phash is not None
    assert 0 <= verdict.phash < 2**64


def test_the_hash_ignores_recompression_but_not_a_new_picture() -> None:
    original = check_image(png(1, 64), 10**8).phash
    recompressed = check_image(encode(picture(1, 64), "JPEG", quality=40), 10**8).phash
    other = check_image(png(2, 64), 10**8).phash
    assert original is not None and recompressed is not None and other is not None
    assert (original ^ recompressed).bit_count() <= 4
    assert (original ^ other).bit_count() > 12


def test_the_hash_of_a_transparent_image_is_the_one_a_viewer_sees() -> None:
    white = check_image(encode(Image.new("RGB", (64, 64), "white")), 10**8).phash
    invisible = picture(5, 64, "RGBA")
    invisible.putalpha(0)
    assert check_image(encode(invisible), 10**8).phash == white
    assert check_image(encode(picture(5, 64, "RGBA")), 10**8).phash != white


def test_a_bad_file_gets_its_reason_and_no_hash() -> None:
    verdict = check_image(b"not an image at all", 10**8)
    assert (verdict.reason, verdict.phash, verdict.usable) == (images.NOT_AN_IMAGE, None, False)
    assert check_image(png(1, 64), 100).reason == images.TOO_LARGE


def _write(folder: Path, contents: list[bytes]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for index, data in enumerate(contents):
        path = folder / f"{index}.bin"
        path.write_bytes(data)
        files[hashlib.sha256(data).hexdigest()] = path
    return files


def test_verdicts_are_remembered_so_a_later_pull_decodes_only_new_images(tmp_path: Path) -> None:
    cache = tmp_path / "checks.json"
    first = _write(tmp_path / "a", [png(1), png(2), b""])
    verdicts = check_files(first, max_pixels=10**8, cache_file=cache, workers=2)
    assert sorted(v.reason or "ok" for v in verdicts.values()) == [images.EMPTY, "ok", "ok"]
    for path in first.values():
        path.unlink()  # a second check must not need to read them again
    second = {**first, **_write(tmp_path / "b", [png(3)])}
    again = check_files(second, max_pixels=10**8, cache_file=cache, workers=2)
    assert {sha: again[sha] for sha in first} == verdicts
    assert again[next(iter(set(second) - set(first)))].usable


def test_a_new_pixel_limit_checks_everything_again(tmp_path: Path) -> None:
    cache = tmp_path / "checks.json"
    files = _write(tmp_path / "a", [png(1, 64)])
    assert all(v.usable for v in check_files(files, max_pixels=10**8, cache_file=cache).values())
    tighter = check_files(files, max_pixels=100, cache_file=cache)
    assert [v.reason for v in tighter.values()] == [images.TOO_LARGE]


def _contents() -> list[bytes]:
    return [png(n) for n in range(9)] + [b"", b"not an image", png(1)[:40]]


def test_many_images_are_checked_in_worker_processes_with_the_same_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _write(tmp_path / "a", _contents())
    alone = {sha: check_image(path.read_bytes(), 10**8) for sha, path in files.items()}
    monkeypatch.setattr(checks, "PROCESS_MIN", 1)
    monkeypatch.setattr(checks, "CHUNK", 2)  # several chunks, and more of them than workers
    monkeypatch.setattr(checks, "default_workers", lambda: 2)
    used: list[int] = []
    real = checks._in_processes

    def counted(paths: list[Path], max_pixels: int, workers: int) -> Iterator[checks.ImageCheck]:
        used.append(len(paths))
        yield from real(paths, max_pixels, workers)

    monkeypatch.setattr(checks, "_in_processes", counted)
    assert check_files(files, max_pixels=10**8, workers=2) == alone
    assert used == [len(files)]


def test_a_broken_worker_pool_leaves_the_rest_to_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _write(tmp_path / "a", _contents())
    alone = {sha: check_image(path.read_bytes(), 10**8) for sha, path in files.items()}
    monkeypatch.setattr(checks, "PROCESS_MIN", 1)
    monkeypatch.setattr(checks, "default_workers", lambda: 2)

    def breaks(paths: list[Path], max_pixels: int, workers: int) -> Iterator[checks.ImageCheck]:
        yield from (checks._check_file(path, max_pixels) for path in paths[:3])
        raise BrokenProcessPool("a worker was killed")

    monkeypatch.setattr(checks, "_in_processes", breaks)
    with pytest.warns(RuntimeWarning, match="checking in threads"):
        assert check_files(files, max_pixels=10**8, workers=2) == alone
