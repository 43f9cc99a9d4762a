"""Decode, orient and resize photos: the only module that touches Pillow.

Training and inference both call :func:`load_batch` / :func:`to_model_input` with the preprocessing recorded
in the model's sidecar, so a model is always served the pixels it was trained on.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# How a model wants its pixels (size, resize mode, filter) is part of its card; re-exported here for the trainers.
from dogcat.modelcard import RESIZE_MODES, Preprocessing

# Pillow's own limit (about 89 megapixels; 2x that is its hard error). Above it Pillow only warns; we refuse,
# because a shelter photo that large is far more likely a corrupt or hostile file than a real camera image.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}  # modelcard.RESAMPLES
PAD_VALUE = 127.5


class ImageError(Exception):
    """A file that cannot be turned into a picture; the message names the problem in one line."""


def open_rgb(path: str | Path) -> Image.Image:
    """Open a photo as an upright 8-bit RGB image, whatever its format, mode or EXIF orientation."""
    path = Path(path)
    if path.is_dir():
        raise ImageError("is a directory, not an image")
    with _decode_errors():
        with Image.open(path) as im:
            return _upright_rgb(im)


@dataclass(frozen=True)
class Decoded:
    """One decode of a photo: its upright size, its container format, and the model's input array."""

    width: int
    height: int
    format: str | None  # as Pillow names it: JPEG, PNG, WEBP, GIF ...
    views: tuple[np.ndarray, ...]  # HxWx3 float32, as to_model_input gives, one per Preprocessing asked for

    @property
    def pixels(self) -> np.ndarray:
        return self.views[0]


def decode(source: str | Path | bytes | Image.Image, prep: Preprocessing, *more: Preprocessing) -> Decoded:
    """A photo's path, its bytes or a PIL image → :class:`Decoded`, one model input per Preprocessing given (the
    photo is decoded once); raises ImageError with a one-line reason.

    The catalog hashes a file's bytes and decodes those same bytes, so the hash always names the pixels.
    """
    if isinstance(source, Image.Image):  # already decoded (the Python API): oriented and converted all the same
        with _decode_errors():
            rgb = _upright_rgb(source)
        return Decoded(rgb.width, rgb.height, source.format, tuple(to_model_input(rgb, p) for p in (prep, *more)))
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty file")
        opened: io.BytesIO | Path = io.BytesIO(source)
    else:
        opened = Path(source)
        if opened.is_dir():
            raise ImageError("is a directory, not an image")
    with _decode_errors():
        with Image.open(opened) as im:
            fmt = im.format
            rgb = _upright_rgb(im)
    return Decoded(rgb.width, rgb.height, fmt, tuple(to_model_input(rgb, p) for p in (prep, *more)))


def jpeg_preview(source: str | Path | bytes, max_side: int, quality: int = 80) -> bytes:
    """A photo (path or bytes) → a small upright JPEG, its longest side at most ``max_side`` pixels: the
    report's thumbnails and ASM3's ANIMALIMAGE. Raises ImageError with a one-line reason."""
    if isinstance(source, bytes) and not source:
        raise ImageError("empty file")
    with _decode_errors():
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source)) as im:
            if im.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale straight away: far faster for a thumbnail
                im.draft("RGB", (max_side, max_side))
            rgb = _upright_rgb(im)
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


# Leading bytes of the formats a camera, phone or scanner writes. Pillow reads most of them; HEIC/AVIF are
# listed too so that an iPhone photo Pillow cannot read becomes an error row rather than a silent skip.
_SIGNATURES = [(0, b"\xff\xd8\xff", "JPEG"), (0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"GIF87a", "GIF"),
               (0, b"GIF89a", "GIF"), (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"),
               (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"), (0, b"\xffO\xffQ", "JPEG2000")]
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
                b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}
SNIFF_BYTES = 32


def sniff(head: bytes) -> str | None:
    """The image format that a file's first bytes announce (at least SNIFF_BYTES of them), or None."""
    for offset, magic, name in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP_BRANDS:
        return _FTYP_BRANDS[head[8:12]]
    # BMP: "BM" alone would match text files, so also check the DIB header's size field.
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64,
                                                                                             108, 124):
        return "BMP"
    return None


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


@contextlib.contextmanager
def _decode_errors() -> Iterator[None]:
    """Turn whatever Pillow raises for a bad file into an ImageError with a one-line message."""
    try:
        with warnings.catch_warnings():  # above the limit Pillow only warns (on stderr): make it an error
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"too large to decode safely ({_one_line(e)})") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageError(f"cannot decode image ({_one_line(e)})") from None
    except Exception as e:  # a corrupt file can trip other errors deep in a plugin (EXIF, palette ...)
        raise ImageError(f"cannot decode image ({type(e).__name__}: {_one_line(e)})") from None


def _upright_rgb(im: Image.Image) -> Image.Image:
    # Pillow only warns between its limit and twice that: refuse here, before any pixel is decoded.
    if im.width * im.height > MAX_PIXELS:
        raise ImageError(f"too large to decode safely ({im.width}x{im.height} pixels, more than the "
                         f"{MAX_PIXELS} allowed)")
    im.seek(0)  # animated GIF/WebP: the first frame
    im = ImageOps.exif_transpose(im)
    return _to_rgb(im)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: Pillow's convert("RGB") clips instead of scaling, which turns photos white.
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent pixels carry arbitrary colours: composite on white, as a viewer shows them.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")  # CMYK, L, P, YCbCr ... use Pillow's colour conversions


def to_model_input(im: Image.Image, prep: Preprocessing) -> np.ndarray:
    """An upright RGB image → HxWx3 float32 array in 0..255, resized as the model expects."""
    if prep.resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {prep.resize!r}; known: {', '.join(RESIZE_MODES)}")
    height, width = prep.size
    resample = RESAMPLE[prep.resample]
    if prep.resize == "stretch" or (im.width * height == im.height * width):
        return np.asarray(im.resize((width, height), resample), dtype=np.float32)
    if prep.resize == "center-crop":
        scale = max(width / im.width, height / im.height)
        w, h = im.width * scale, im.height * scale
        box = ((w - width) / 2 / scale, (h - height) / 2 / scale, (w + width) / 2 / scale, (h + height) / 2 / scale)
        return np.asarray(im.resize((width, height), resample, box=box), dtype=np.float32)
    # letterbox
    scale = min(width / im.width, height / im.height)
    w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
    out = np.full((height, width, 3), PAD_VALUE, dtype=np.float32)
    top, left = (height - h) // 2, (width - w) // 2
    out[top:top + h, left:left + w] = np.asarray(im.resize((w, h), resample), dtype=np.float32)
    return out


def load(path: str | Path, prep: Preprocessing) -> np.ndarray:
    return to_model_input(open_rgb(path), prep)


def load_batch(paths: Sequence[str | Path], prep: Preprocessing) -> np.ndarray:
    """Stack several photos into one NHWC batch; raises ImageError naming the first bad file."""
    out = np.empty((len(paths), *prep.size, 3), dtype=np.float32)
    for i, p in enumerate(paths):
        try:
            out[i] = load(p, prep)
        except ImageError as e:
            raise ImageError(f"{p}: {e}") from None
    return out
