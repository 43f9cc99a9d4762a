"""Decode, orient and resize photos: the only module that touches Pillow (and its HEIF decoder).

Training and inference both call :func:`load_batch` / :func:`to_model_input` with the preprocessing recorded
in the model's sidecar, so a model is always served the pixels it was trained on.

Every photo dogcat reads (classify, catalog, evaluate, similar, teach, the report's thumbnails and ASM3's
pictures) is opened here, so a format read here is read everywhere: Pillow's own (JPEG, PNG, WebP, AVIF, TIFF,
BMP, GIF ...) and HEIC/HEIF through pi-heif, registered with Pillow on the first decode (docs/photos.md says why
pi-heif). A photo is taken as the phone or camera meant it to be shown: its HEIF rotation and mirror
(irot/imir) or EXIF orientation applied, the primary image of a file holding several, 8 bits a channel.

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import stat
import warnings
from collections.abc import Callable, Iterator, Sequence
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
    with _open(Path(path)) as im:
        return _upright_rgb(im, opened_here=True)


@dataclass(frozen=True)
class Decoded:
    """One decode of a photo: its upright size, its container format, and the model's input array."""

    width: int
    height: int
    format: str | None  # as Pillow names it (JPEG, PNG, WEBP, GIF, AVIF ...), but HEIC or HEIF by the file's brand
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
        with _decode_errors(lambda: b""):
            rgb = _upright_rgb(source, opened_here=False)
        return Decoded(rgb.width, rgb.height, _format_of(source),
                       tuple(to_model_input(rgb, p) for p in (prep, *more)))
    with _open(source if isinstance(source, bytes) else Path(source)) as im:
        fmt = _format_of(im)
        rgb = _upright_rgb(im, opened_here=True)
    return Decoded(rgb.width, rgb.height, fmt, tuple(to_model_input(rgb, p) for p in (prep, *more)))


def jpeg_preview(source: str | Path | bytes, max_side: int, quality: int = 80) -> bytes:
    """A photo (path or bytes) → a small upright JPEG, its longest side at most ``max_side`` pixels: the
    report's thumbnails and ASM3's ANIMALIMAGE. Raises ImageError with a one-line reason."""
    with _open(source if isinstance(source, bytes) else Path(source)) as im:
        if im.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale straight away: far faster for a thumbnail
            im.draft("RGB", (max_side, max_side))
        rgb = _upright_rgb(im, opened_here=True)
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


# Leading bytes of the formats a camera, phone or scanner writes: a file that starts so is a photo whatever its
# name (and one that then fails to decode is an error row naming the format, never a silent skip).
_SIGNATURES = [(0, b"\xff\xd8\xff", "JPEG"), (0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"GIF87a", "GIF"),
               (0, b"GIF89a", "GIF"), (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"),
               (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"), (0, b"\xffO\xffQ", "JPEG2000")]
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
                b"hevx": "HEIC", b"hevm": "HEIC", b"hevs": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF",
                b"avif": "AVIF", b"avis": "AVIF"}
# The same container's video brands (QuickTime .MOV, as a Live Photo's, MP4, 3GP): a video, not a photo. Older
# QuickTime files start with a moov, mdat, wide or free atom instead of ftyp.
_VIDEO_BRANDS = (b"qt  ", b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
                 b"M4VH", b"M4VP", b"3gp", b"3g2", b"MSNV", b"dash", b"XAVC")
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
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


def is_video(head: bytes) -> bool:
    """Whether a file's first bytes are those of a video (a Live Photo's .MOV, an MP4): not a photo at all."""
    if head[4:8] == b"ftyp":
        return head[8:12].startswith(_VIDEO_BRANDS)
    return head[4:8] in _QUICKTIME_ATOMS and int.from_bytes(head[:4], "big") >= 8


# What a volunteer reads for a file that is no picture at all (the formats are those a phone or camera writes).
NOT_A_PHOTO = "not a photo dogcat can read: no picture format recognised (it reads JPEG, HEIC/HEIF, PNG, WebP, " \
              "AVIF, TIFF, BMP and GIF)"
_SHOWN_NAMES = {"WEBP": "WebP", "JPEG2000": "JPEG 2000", "MPO": "JPEG"}  # a camera's MPO is JPEG to its owner


# pi-heif: libheif + libde265, decode-only (LGPL-3.0 wheels). It has no Windows-on-arm64 wheel; pillow-heif, the
# same code with the x265 encoder added (GPL-2.0 wheels), has, and pyproject.toml installs it there instead.
HEIF_DECODERS = ("pi_heif", "pillow_heif")


@functools.cache
def _heif_missing() -> str | None:
    """Teach Pillow HEIC/HEIF, once, on the first decode (not at import: ``dogcat --help`` loads no codec).
    None when it is registered, else why it cannot be."""
    for name in HEIF_DECODERS:
        try:
            decoder = importlib.import_module(name)
        except ImportError:
            continue
        # Thumbnails, depth maps and other auxiliary images are never wanted: the main picture only.
        decoder.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        return None
    return "its HEIF decoder is not installed (a broken install: pip install pi-heif)"


def _format_of(im: Image.Image) -> str | None:
    if im.format == "HEIF":  # the plugin names every HEIF file so; the file's brand says HEIC (HEVC) or not
        return "HEIC" if getattr(im, "custom_mimetype", None) in ("image/heic", "image/heic-sequence") else "HEIF"
    return im.format


def _head(source: Path | bytes) -> bytes | None:
    """The first bytes of a photo, to name its format in an error; empty when they cannot be read; None for a
    pipe or a device, which is never opened a second time (its bytes were read, and a second open would wait for
    a writer that may never come)."""
    if isinstance(source, bytes):
        return source[:SNIFF_BYTES]
    try:
        if not stat.S_ISREG(source.stat().st_mode):
            return None
        with open(source, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError:
        return b""


@contextlib.contextmanager
def _open(source: Path | bytes) -> Iterator[Image.Image]:
    """Image.open on a photo's path or bytes; whatever goes wrong, opening or decoding in the ``with`` body,
    becomes an ImageError with a one-line message that names the format when the first bytes named one."""
    if isinstance(source, bytes) and not source:
        raise ImageError("empty file")
    if isinstance(source, Path) and source.is_dir():
        raise ImageError("is a directory, not an image")
    _heif_missing()
    with _decode_errors(lambda: _head(source)):
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            yield im


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _could_not_decode(fmt: str | None, why: str) -> str:
    if fmt is None:
        return f"not a photo dogcat can read: {why}"
    name = _SHOWN_NAMES.get(fmt, fmt)
    return f"{'an' if name[0] in 'AEIO' else 'a'} {name} photo dogcat could not decode: {why}"


def _why(e: BaseException) -> str:
    """A decoder's complaint in a volunteer's words first, the decoder's own after (for whoever digs further)."""
    said = _one_line(e) or type(e).__name__
    if any(w in said.lower() for w in ("truncated", "end of file", "end of data", "premature end", "not enough data")):
        return f"the file is cut short ({said})"
    return f"its data is damaged ({said})"


def _unidentified(head: bytes | None) -> str:
    """Why Pillow (with its HEIF plugin) recognised no format in a file, in words."""
    if head is None:
        return "not a photo dogcat can read: no picture format recognised in what this pipe or device gave"
    if not head:
        return "empty file"
    fmt = sniff(head)
    if fmt is None:
        return "a video, not a photo (dogcat reads photos only)" if is_video(head) else NOT_A_PHOTO
    if fmt in ("HEIC", "HEIF") and (missing := _heif_missing()):
        return _could_not_decode(fmt, missing)
    return _could_not_decode(fmt, "its data is damaged or cut short")


@contextlib.contextmanager
def _decode_errors(head: Callable[[], bytes | None]) -> Iterator[None]:
    """Turn whatever Pillow (or its HEIF plugin) raises for a bad file into an ImageError with a one-line
    message; ``head`` gives the file's first bytes, read only when the error needs them."""
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
        raise ImageError(_unidentified(head())) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"too large to decode safely ({_one_line(e)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt data
        raise ImageError(_could_not_decode(sniff(head() or b""), _why(e))) from None
    except Exception as e:  # a corrupt file can trip other errors deep in a plugin (EXIF, palette ...)
        raise ImageError(_could_not_decode(sniff(head() or b""), _why(e))) from None


def _upright_rgb(im: Image.Image, *, opened_here: bool) -> Image.Image:
    # Pillow only warns between its limit and twice that: refuse here, before any pixel is decoded.
    if im.width * im.height > MAX_PIXELS:
        raise ImageError(f"too large to decode safely ({im.width}x{im.height} pixels, more than the "
                         f"{MAX_PIXELS} allowed)")
    _first_picture(im)
    # HEIF: its irot/imir are applied in decoding, and its EXIF orientation reset.
    if not opened_here:  # the caller's image (the Python API): never changed, so transposed into a copy
        return _to_rgb(ImageOps.exif_transpose(im))
    # A file this module opened is turned where it lies, and its pixels are not copied again when already RGB:
    # each copy of a phone's 12-megapixel photo costs ~30 ms (benchmarks/RESULTS.md, HEIC against JPEG).
    im.load()
    ImageOps.exif_transpose(im, in_place=True)
    # A plain image over those pixels, no longer tied to its file (a burst's HEIF would decode again on a load).
    return _to_rgb(im._new(im.im))


def _first_picture(im: Image.Image) -> None:
    """Seek to the picture a viewer shows: an animated GIF/WebP's first frame; a HEIF's primary image (a burst,
    a Live Photo's still: the one the phone marked primary, not necessarily the first stored)."""
    if im.format != "HEIF":
        im.seek(0)
        return
    if im.info.get("primary", True):  # the plugin opens a file on its primary image
        return
    for frame in range(getattr(im, "n_frames", 1)):
        im.seek(frame)
        if im.info.get("primary"):
            return


def _to_rgb(im: Image.Image) -> Image.Image:
    """This module's own image (never the caller's) in 8-bit RGB: itself when it already is."""
    if im.mode == "RGB":
        return im
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
