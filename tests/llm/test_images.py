"""Image preparation with real Pillow: formats, orientation, EXIF, size limits, bad input, token estimates."""
from __future__ import annotations

import base64
import io
import os
import struct
import threading
import zlib

import pytest
from PIL import Image

from bot.errors import ImageUnreadable
from bot.llm import images
from bot.llm.images import (
    MAX_BASE64_BYTES,
    MAX_LONG_EDGE,
    PreparedImage,
    anthropic_image_tokens,
    openai_image_tokens,
    prepare_image,
    prepare_image_async,
    sniff_format,
)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A smooth picture (compresses like a photo), not a flat colour."""
    base = Image.linear_gradient("L").resize((width, height))
    if mode == "L":
        return base
    return Image.merge("RGB", (base, base.transpose(Image.Transpose.ROTATE_90).resize((width, height)),
                               Image.new("L", (width, height), 90))).convert(mode)


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height: what a decompression bomb looks like to open()."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def reopen(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    return image


# --- formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, media_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                             ("GIF", "image/png"), ("WEBP", "image/png")])
def test_each_supported_format_is_decoded_and_reencoded(fmt, media_type):
    source = encode(gradient(640, 480), fmt)
    prepared = prepare_image(source, f"picture.{fmt.lower()}")
    assert prepared.media_type == media_type
    assert (prepared.width, prepared.height) == (640, 480)
    assert reopen(prepared).size == (640, 480)
    assert sniff_format(prepared.data) == {"image/png": "PNG", "image/jpeg": "JPEG"}[media_type]


def test_long_edge_is_capped_keeping_the_aspect_ratio():
    prepared = prepare_image(encode(gradient(4000, 1000), "PNG"), "wide.png")
    assert max(prepared.width, prepared.height) <= MAX_LONG_EDGE
    assert prepared.width == MAX_LONG_EDGE
    assert abs(prepared.width / prepared.height - 4.0) < 0.02


def test_a_twelve_megapixel_photo_is_reduced_to_about_1600_tokens():
    prepared = prepare_image(encode(gradient(4000, 3000), "JPEG", quality=90), "photo.jpg")
    assert prepared.media_type == "image/jpeg"
    assert abs(prepared.width / prepared.height - 4 / 3) < 0.01
    assert prepared.width * prepared.height <= 1092 * 1092
    assert 1500 <= anthropic_image_tokens(prepared.width, prepared.height) <= 1600


def test_small_images_are_not_enlarged():
    prepared = prepare_image(encode(gradient(100, 40), "PNG"), "tiny.png")
    assert (prepared.width, prepared.height) == (100, 40)


def test_exif_orientation_is_applied_and_exif_stripped():
    photo = gradient(600, 300)
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held upright: rotate 90° clockwise to show
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS position
    prepared = prepare_image(encode(photo, "JPEG", exif=exif.tobytes()), "phone.jpg")
    shown = reopen(prepared)
    assert shown.size == (300, 600)
    assert dict(shown.getexif()) == {}
    assert b"SecretCam" not in prepared.data and b"Exif" not in prepared.data


def test_png_text_chunks_and_icc_profile_are_not_kept():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "private person")
    source = encode(gradient(200, 200), "PNG", pnginfo=info, icc_profile=b"\x00" * 128)
    prepared = prepare_image(source, "shot.png")
    assert b"private person" not in prepared.data
    assert "icc_profile" not in reopen(prepared).info


def test_transparency_survives_as_png():
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (16, 16, 48, 48))
    prepared = prepare_image(encode(image, "PNG"), "logo.png")
    shown = reopen(prepared).convert("RGBA")
    assert shown.getpixel((0, 0))[3] == 0
    assert shown.getpixel((32, 32)) == (0, 0, 255, 255)


def test_a_palette_gif_is_resized_smoothly_not_with_nearest_neighbour():
    stripes = Image.new("P", (3200, 100))
    stripes.putpalette([0, 0, 0, 255, 255, 255])
    for x in range(0, 3200, 2):
        stripes.paste(1, (x, 0, x + 1, 100))
    prepared = prepare_image(encode(stripes, "GIF"), "stripes.gif")
    shown = reopen(prepared).convert("L")
    # Alternating 1-px stripes halved smoothly average to grey; nearest-neighbour would keep pure black/white.
    middle = shown.getpixel((shown.width // 2, shown.height // 2))
    assert 60 < middle < 200


def test_an_encoded_image_always_fits_anthropics_5_mb():
    # Random RGBA at the largest size kept: no PNG of it can fit, so it must become a JPEG.
    noise = Image.frombytes("RGBA", (1092, 1092), os.urandom(1092 * 1092 * 4))
    source = encode(noise, "PNG")
    assert len(source) > images.MAX_ENCODED_BYTES
    prepared = prepare_image(source, "noise.png")
    assert len(base64.b64encode(prepared.data)) <= MAX_BASE64_BYTES
    assert prepared.media_type == "image/jpeg"


def test_animated_gif_of_500_frames_gives_its_first_frame_and_says_so():
    frames = [Image.new("P", (120, 80), color=i % 256) for i in range(500)]
    for frame in frames:
        frame.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    source = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20)
    assert Image.open(io.BytesIO(source)).n_frames == 500
    prepared = prepare_image(source, "party.gif")
    assert (prepared.width, prepared.height) == (120, 80)
    assert prepared.note == "party.gif is animated; I looked at its first frame only."
    assert reopen(prepared).convert("RGB").getpixel((5, 5)) == (0, 255, 0)


# --- bad input: one clear sentence each -------------------------------------------------------------


def test_bytes_that_are_not_an_image():
    with pytest.raises(ImageUnreadable) as info:
        prepare_image(b"%PDF-1.7 this is not a picture at all", "screenshot.png")
    assert info.value.user_message() == (
        "screenshot.png is labelled as an image, but its contents are not an image I recognise.")


@pytest.mark.parametrize("kind, data", [
    ("HEIC", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40),
    ("SVG", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
    ("SVG", b'  <svg xmlns="http://www.w3.org/2000/svg"><rect width="5" height="5"/></svg>'),
    ("TIFF", encode(gradient(32, 32), "TIFF")),
])
def test_unsupported_image_formats_are_named(kind, data):
    with pytest.raises(ImageUnreadable) as info:
        prepare_image(data, "scan")
    assert info.value.user_message() == (
        f"scan is a {kind} image, which I can't read; please share it as PNG, JPEG, GIF or WebP.")


def test_a_truncated_image_is_reported_as_damaged():
    source = encode(gradient(400, 400), "PNG")
    with pytest.raises(ImageUnreadable) as info:
        prepare_image(source[: len(source) // 3], "cut.png")
    assert info.value.user_message() == "cut.png looks damaged: I couldn't decode it as a PNG image."


def test_pillows_decompression_bomb_limit_is_on_and_refuses_a_bomb():
    assert Image.MAX_IMAGE_PIXELS is not None
    bomb = png_header_claiming(40_000, 40_000)  # 1.6 gigapixels declared in a ~100-byte file
    assert len(bomb) < 200
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))  # Pillow's own check, not ours
    with pytest.raises(ImageUnreadable) as info:
        prepare_image(bomb, "bomb.png")
    assert info.value.user_message() == (
        "bomb.png has far too many pixels, more than the 89 megapixels I can open; please share a smaller copy.")


def test_a_100_megapixel_png_is_refused_before_decoding():
    with pytest.warns(Image.DecompressionBombWarning):
        with pytest.raises(ImageUnreadable) as info:
            prepare_image(png_header_claiming(10_000, 10_000), "huge.png")
    assert info.value.user_message() == (
        "huge.png has 100 megapixels, more than the 89 megapixels I can open; please share a smaller copy.")


def test_a_100_megapixel_jpeg_is_resized_through_draft_mode():
    photo = Image.new("L", (12_500, 8_000), 128)  # 100 MP; a JPEG decodes it at 1/8 scale
    source = encode(photo, "JPEG", quality=50)
    del photo
    with pytest.warns(Image.DecompressionBombWarning):
        prepared = prepare_image(source, "pano.jpg")
    assert max(prepared.width, prepared.height) <= MAX_LONG_EDGE
    assert prepared.width * prepared.height <= 1092 * 1092
    assert abs(prepared.width / prepared.height - 12_500 / 8_000) < 0.01


# --- off the event loop ------------------------------------------------------------------------------


async def test_the_async_wrapper_decodes_on_the_image_threads():
    seen: list[str] = []
    original = images._prepare

    def spy(data, name, kind):
        seen.append(threading.current_thread().name)
        return original(data, name, kind)

    images._prepare = spy
    try:
        prepared = await prepare_image_async(encode(gradient(300, 200), "PNG"), "async.png")
    finally:
        images._prepare = original
    assert (prepared.width, prepared.height) == (300, 200)
    assert seen and seen[0].startswith("images")
    assert seen[0] != threading.main_thread().name


# --- token estimates --------------------------------------------------------------------------------


def test_anthropic_tokens_follow_width_times_height_over_750():
    assert anthropic_image_tokens(1000, 1000) == 1334  # ceil(1_000_000 / 750)
    assert anthropic_image_tokens(200, 200) == 54
    # Larger images are counted at the size the API scales them to (about 1600 tokens at most).
    assert anthropic_image_tokens(4000, 3000) <= 1600


@pytest.mark.parametrize("size, detail, tokens", [
    ((1024, 1024), "high", 765),  # OpenAI's documented examples
    ((2048, 4096), "high", 1105),
    ((4096, 8192), "low", 85),
    ((512, 512), "auto", 255),
])
def test_openai_tokens_follow_the_tile_rule(size, detail, tokens):
    assert openai_image_tokens(*size, detail=detail) == tokens


def test_an_embedded_colour_profile_is_applied_then_dropped():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encode(Image.new("RGB", (50, 50), (200, 40, 40)), "PNG", icc_profile=srgb)
    shown = reopen(prepare_image(source, "p3.png"))
    assert "icc_profile" not in shown.info
    assert all(abs(a - b) <= 3 for a, b in zip(shown.getpixel((10, 10)), (200, 40, 40)))
