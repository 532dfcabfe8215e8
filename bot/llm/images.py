"""Images for the model: decode with Pillow, drop metadata, fit the providers' limits, estimate their tokens."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, ImageCms, UnidentifiedImageError

from bot.errors import ImageUnreadable

# What both providers accept, keyed by Pillow's format name.
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
# Anthropic scales anything larger down itself (costing latency, not accuracy): a long edge above 1568 px,
# or more than ~1.19 MP (its own size table tops out at 1092x1092). Sending that size saves upload and tokens.
MAX_LONG_EDGE = 1568
MAX_PIXELS = 1092 * 1092
# Anthropic's 5 MB per image is measured on the base64 text, so the bytes must stay under 3/4 of it.
MAX_BASE64_BYTES = 5 * 1024 * 1024
MAX_ENCODED_BYTES = MAX_BASE64_BYTES // 4 * 3
JPEG_QUALITIES = (85, 70, 50)

# Decoding runs on its own two threads: the event loop stays free, and at most two full-size
# images are in memory at once however many turns carry images.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="images")

# EXIF orientation -> the transpose that shows the picture upright (EXIF 2.3, tag 0x0112).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send: re-encoded bytes without metadata, within every provider limit."""

    name: str
    data: bytes
    media_type: str
    width: int
    height: int
    note: str | None = None  # a sentence for the user, e.g. that only a GIF's first frame was read

    @property
    def sha256(self) -> str:
        """The content address the store keeps it under."""
        return hashlib.sha256(self.data).hexdigest()

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def sniff_format(data: bytes) -> str | None:
    """The format the bytes are in, from their magic numbers: a Pillow name, an unsupported one, or None."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim"):
        return "HEIC"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if head.startswith(b"BM"):
        return "BMP"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "SVG"
    return None


def prepare_image(data: bytes, name: str) -> PreparedImage:
    """Decode, turn upright, shrink to the limits and re-encode `data`; ImageUnreadable says why not."""
    kind = sniff_format(data)
    if kind is None:
        raise ImageUnreadable(f"{name} is labelled as an image, but its contents are not an image I recognise.")
    if kind not in MEDIA_TYPES:
        raise ImageUnreadable(f"{name} is a {kind} image, which I can't read; please share it as PNG, JPEG, "
                              f"GIF or WebP.")
    try:
        return _prepare(data, name, kind)
    except Image.DecompressionBombError:
        raise _too_large(name, None) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        # Truncated or corrupt data: Pillow reports it as any of these, depending on the decoder.
        raise ImageUnreadable(f"{name} looks damaged: I couldn't decode it as a {kind} image.") from None


async def prepare_image_async(data: bytes, name: str) -> PreparedImage:
    """prepare_image on the image threads, so decoding never blocks the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, prepare_image, data, name)


def _prepare(data: bytes, name: str, kind: str) -> PreparedImage:
    with Image.open(io.BytesIO(data), formats=[kind]) as image:
        width, height = image.size
        # Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS) refuses anything over twice it in
        # open(). A JPEG up to that is still fine: draft() decodes it at 1/2..1/8 scale, so memory stays small.
        # Other formats decode in full, so they must stay under the limit itself.
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and kind != "JPEG" and width * height > limit:
            raise _too_large(name, width * height)
        animated = bool(getattr(image, "is_animated", False))
        if animated:
            image.seek(0)
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        # Palette and 1-bit images would be resized with nearest-neighbour: convert them first.
        work = _normalise_mode(image) if image.mode in ("P", "1") else image
        # thumbnail() decodes a JPEG at 1/2..1/8 scale (draft) when that still leaves 1.5x the target, then
        # reduces by whole factors before the final Lanczos pass: about 3x faster than full-size decoding.
        work.thumbnail(fit_size(width, height), Image.Resampling.LANCZOS, reducing_gap=1.5)
        # A copy outlives closing the file (close() frees the source's pixels).
        picture = work.copy() if work is image else work
    if orientation in _ORIENTATION:
        picture = picture.transpose(_ORIENTATION[orientation])
    picture = _to_srgb(_normalise_mode(picture))
    # Nothing of the source's metadata goes out: EXIF (GPS, camera), text chunks, ICC profile, comments.
    picture.info = {}
    note = f"{name} is animated; I looked at its first frame only." if animated else None
    encoded, media_type, picture = _encode(picture, prefer_jpeg=kind == "JPEG")
    return PreparedImage(name=name, data=encoded, media_type=media_type, width=picture.width,
                         height=picture.height, note=note)


def fit_size(width: int, height: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio inside MAX_LONG_EDGE and MAX_PIXELS (never larger)."""
    scale = min(1.0, MAX_LONG_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _normalise_mode(picture: Image.Image) -> Image.Image:
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    if picture.mode in ("RGB", "RGBA", "L") and "transparency" not in picture.info:
        return picture
    return picture.convert("RGBA" if has_alpha else "RGB")


_SRGB = ImageCms.createProfile("sRGB")


def _to_srgb(picture: Image.Image) -> Image.Image:
    """Colours as the model will see them once the profile is gone (e.g. a Display P3 screenshot)."""
    icc = picture.info.get("icc_profile")
    if not icc or picture.mode not in ("RGB", "RGBA"):
        return picture
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(picture, source, _SRGB, outputMode=picture.mode) or picture
    except (ImageCms.PyCMSError, OSError, ValueError):
        return picture  # a broken profile: the pixels as they are are the best guess


def _encode(picture: Image.Image, *, prefer_jpeg: bool) -> tuple[bytes, str, Image.Image]:
    """Re-encode without EXIF, ICC or text chunks; PNG keeps screenshots sharp, JPEG keeps photos small."""
    while True:
        if not prefer_jpeg:
            # Level 3: a third of level 6's time for ~9% more bytes; the bytes only travel to the API once.
            png = _save(picture, "PNG", compress_level=3)
            if len(png) <= MAX_ENCODED_BYTES:
                return png, "image/png", picture
        flat = _flatten(picture)
        for quality in JPEG_QUALITIES:
            jpeg = _save(flat, "JPEG", quality=quality)
            if len(jpeg) <= MAX_ENCODED_BYTES:
                return jpeg, "image/jpeg", flat
        # Still too big (pathological noise): shrink and try again.
        picture = picture.resize((max(1, picture.width * 3 // 4), max(1, picture.height * 3 // 4)),
                                 Image.Resampling.LANCZOS)
        prefer_jpeg = True


def _flatten(picture: Image.Image) -> Image.Image:
    if picture.mode in ("RGB", "L"):
        return picture
    rgba = picture.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _save(picture: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt, **options)
    return out.getvalue()


def _too_large(name: str, pixels: int | None) -> ImageUnreadable:
    limit_mp = (Image.MAX_IMAGE_PIXELS or 0) // 1_000_000
    size = f"{pixels / 1_000_000:.0f} megapixels" if pixels else "far too many pixels"
    return ImageUnreadable(f"{name} has {size}, more than the {limit_mp} megapixels I can open; "
                           f"please share a smaller copy.")


# --- token estimates -----------------------------------------------------------------------------


def anthropic_image_tokens(width: int, height: int) -> int:
    """Anthropic's published estimate, width x height / 750, on the size the API will use."""
    w, h = fit_size(width, height)
    return math.ceil(w * h / 750)


def openai_image_tokens(width: int, height: int, *, detail: str = "auto") -> int:
    """OpenAI's tile rule: fit 2048 px, shortest side to 768 px, then 85 + 170 per 512 px tile."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    if min(w, h) > 768:
        shrink = 768 / min(w, h)
        w, h = w * shrink, h * shrink
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles
