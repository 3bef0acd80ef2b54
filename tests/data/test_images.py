"""Decoding: awkward but valid images are converted correctly; broken ones say why."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from skillmaker.data import images
from skillmaker.data.images import BadImage, decode, open_image
from tests.data.pictures import encode, picture

BIG = 10**8


def _rgb(seed: int = 1, size: int = 32) -> np.ndarray:
    return np.asarray(picture(seed, size), dtype=np.uint8)


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_cmyk_jpeg_comes_back_as_the_same_colours() -> None:
    reference = _rgb()
    data = encode(Image.fromarray(reference).convert("CMYK"), "JPEG", quality=100, subsampling=0)
    assert open_image(data, BIG).mode == "CMYK"
    assert _max_diff(decode(data, 32, 32, 3, BIG), reference) <= 6


def test_cmyk_tiff_is_exact() -> None:
    reference = _rgb()
    data = encode(Image.fromarray(reference).convert("CMYK"), "TIFF")
    assert _max_diff(decode(data, 32, 32, 3, BIG), reference) == 0


def test_palette_png_gives_its_palette_colours() -> None:
    paletted = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    data = encode(paletted)
    assert open_image(data, BIG).mode == "P"
    assert _max_diff(decode(data, 32, 32, 3, BIG), np.asarray(paletted.convert("RGB"))) == 0


def test_transparent_palette_entries_become_white() -> None:
    paletted = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    index = int(np.asarray(paletted)[0, 0])
    decoded = decode(encode(paletted, transparency=index), 32, 32, 3, BIG)
    transparent = np.asarray(paletted) == index
    assert (decoded[transparent] == 255).all()
    opaque = ~transparent
    assert _max_diff(decoded[opaque], np.asarray(paletted.convert("RGB"))[opaque]) == 0


@pytest.mark.parametrize("top", [65535, 300])
def test_16_bit_greyscale_is_scaled_to_8_bits_by_its_full_range(top: int) -> None:
    rng = np.random.default_rng(3)
    grey16 = np.kron(rng.integers(0, top + 1, (8, 8)), np.ones((4, 4))).astype(np.uint16)
    data = encode(Image.fromarray(grey16))
    assert open_image(data, BIG).mode == "I;16"
    expected = np.round(grey16 / 65535 * 255).astype(np.uint8)
    assert _max_diff(decode(data, 32, 32, 1, BIG)[..., 0], expected) == 0
    assert _max_diff(decode(data, 32, 32, 3, BIG), np.dstack([expected] * 3)) == 0


def test_big_endian_16_bit_tiff_is_scaled_the_same() -> None:
    grey16 = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    big_endian = Image.frombytes("I;16B", (32, 32), grey16.astype(">u2").tobytes())
    data = encode(big_endian, "TIFF")
    assert open_image(data, BIG).mode == "I;16B"
    expected = np.round(grey16 / 65535 * 255).astype(np.uint8)
    assert _max_diff(decode(data, 32, 32, 1, BIG)[..., 0], expected) == 0


def test_alpha_is_composited_on_white() -> None:
    rgb = _rgb()
    alpha = np.zeros((32, 32), dtype=np.uint8)
    alpha[:, 16:] = 255
    alpha[:8, :] = 128
    data = encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))
    decoded = decode(data, 32, 32, 3, BIG).astype(float)
    weight = alpha[..., None] / 255.0
    expected = rgb * weight + 255.0 * (1 - weight)
    assert np.abs(decoded - expected).max() <= 1.0
    assert (decoded[8:, :16] == 255).all()


def test_grey_with_alpha_is_composited_on_white() -> None:
    grey = _rgb()[..., 0]
    data = encode(Image.fromarray(np.dstack([grey, np.zeros_like(grey)]), "LA"))
    assert (decode(data, 32, 32, 1, BIG) == 255).all()


# EXIF orientation -> what a viewer shows (the transpose that undoes it).
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_rotated_images_come_back_upright(orientation: int) -> None:
    stored = Image.fromarray(np.ascontiguousarray(_rgb()[:, :16]))  # 16 wide, 32 high
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "PNG", exif=exif.tobytes())
    upright = np.asarray(stored.transpose(ORIENTATIONS[orientation]))
    opened = open_image(data, BIG)
    assert opened.size == (upright.shape[1], upright.shape[0])
    height, width = upright.shape[:2]
    assert _max_diff(decode(data, height, width, 3, BIG), upright) == 0


def test_exif_rotation_in_a_jpeg_is_applied() -> None:
    stored = Image.fromarray(np.ascontiguousarray(_rgb()[:, :16]))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())
    upright = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))
    assert _max_diff(decode(data, 16, 32, 3, BIG), upright) <= 8


def _premultiplied_grey_alpha_tiff() -> bytes:
    """Give a TIFF whose ExtraSamples tag says associated alpha: Pillow opens it in mode La."""
    data = encode(Image.new("LA", (8, 8), (100, 50)), "TIFF")
    unassociated = bytes.fromhex("52010300010000000200")  # tag 338, SHORT, 1, value 2
    assert data.count(unassociated) == 1
    return data.replace(unassociated, bytes.fromhex("52010300010000000100"))


def _broken_png_data() -> bytes:
    data = bytearray(encode(picture(4, 32)))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = bytes(40)  # zeros in the middle of the compressed pixels
    return bytes(data)


BAD = {
    "empty": (b"", images.EMPTY),
    "text": (b"path,label,group\n", images.NOT_AN_IMAGE),
    "truncated png": (encode(picture(2, 32))[:150], images.TRUNCATED),
    "truncated jpeg": (encode(picture(2, 32), "JPEG")[:400], images.TRUNCATED),
    "corrupt png": (_broken_png_data(), images.UNDECODABLE),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_broken_files_are_refused_with_their_reason(name: str) -> None:
    data, reason = BAD[name]
    with pytest.raises(BadImage) as caught:
        decode(data, 16, 16, 3, BIG)
    assert caught.value.reason == reason


def test_a_premultiplied_alpha_tiff_is_refused_not_a_crash() -> None:
    # Pillow up to 12.2 opens it in mode "La" (which we do not convert); 12.3 does not open it.
    with pytest.raises(BadImage) as caught:
        decode(_premultiplied_grey_alpha_tiff(), 16, 16, 3, BIG)
    assert caught.value.reason in (images.UNSUPPORTED_MODE, images.NOT_AN_IMAGE)


def test_images_over_the_pixel_limit_are_refused_before_decoding() -> None:
    data = encode(picture(1, 64))
    with pytest.raises(BadImage) as caught:
        open_image(data, 64 * 64 - 1)
    assert (caught.value.reason, caught.value.detail) == (images.TOO_LARGE, "64x64")
    assert open_image(data, 64 * 64).size == (64, 64)


def test_a_decompression_bomb_header_is_refused() -> None:
    # A PNG header announcing 100,000 x 100,000 pixels: refused without allocating them.
    data = io.BytesIO()
    Image.new("1", (1, 1)).save(data, "PNG")
    raw = bytearray(data.getvalue())
    raw[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    with pytest.raises(BadImage) as caught:
        open_image(bytes(raw), 40_000_000)
    assert caught.value.reason == images.TOO_LARGE


def test_a_big_jpeg_is_decoded_at_a_reduced_size_that_still_covers_the_target() -> None:
    photo = np.asarray(picture(5, 64).resize((2000, 1600)), dtype=np.uint8)
    data = encode(Image.fromarray(photo), "JPEG", quality=95)
    assert open_image(data, BIG).size == (2000, 1600)
    # 1/8 of 2000x1600 is 250x200: the smallest scale whose both sides cover 100 pixels.
    assert open_image(data, BIG, draft=(100, 60)).size == (250, 200)
    reduced = decode(data, 60, 100, 3, BIG)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((100, 60)))
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 3


def test_a_big_16_bit_image_is_shrunk_before_it_is_scaled_to_8_bits() -> None:
    grey16 = np.full((512, 512), 30000, dtype=np.uint16)
    grey16[:, 256:] = 65535
    decoded = decode(encode(Image.fromarray(grey16)), 4, 4, 1, BIG)[..., 0]
    assert (decoded[:, 0] == round(30000 / 65535 * 255)).all()  # 117, as at full size
    assert (decoded[:, 3] == 255).all()
    assert (decoded[:, 0] < decoded[:, 1]).all()
    assert (decoded[:, 1] <= decoded[:, 2]).all()
