"""Make the HEIC/HEIF test photos in this folder from Stanford Dogs photos in tests/data/stanford-dogs.

dogcat itself only decodes HEIF (pi-heif, decode-only: see README). These files were encoded once with
pillow-heif (the same project's build with the x265 encoder, GPLv2 wheels, so not a dogcat dependency) and are
committed, so the tests need no encoder:

    pip install --target /tmp/heifenc pillow-heif==1.8.1
    PYTHONPATH=/tmp/heifenc python tests/data/heif/make_files.py

Run from the checkout's root; it rewrites the files below (x265 output is deterministic for the same build).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

HERE = Path(__file__).parent
DOGS = HERE.parent / "stanford-dogs"
CROP = DOGS / "stanford-dogs-crops-224" / "n02099601-golden_retriever" / "n02099601_1010.jpg"
OTHERS = [DOGS / "stanford-dogs-crops-224" / "n02085936-Maltese_dog", DOGS / "stanford-dogs-crops-224" /
          "n02106662-German_shepherd"]
WIDE = DOGS / "stanford-dogs-originals" / "n02099601-golden_retriever" / "n02099601_10.jpg"
QUALITY = 60
ORIENTATION = 0x0112


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()


def _save(heif: pillow_heif.HeifFile, name: str, **kwargs) -> bytes:
    out = io.BytesIO()
    heif.save(out, quality=QUALITY, **kwargs)
    data = out.getvalue()
    (HERE / name).write_bytes(data)
    return data


def main() -> None:
    crop = Image.open(CROP).convert("RGB")
    # The Golden Retriever crop the other tests use, as a phone would store it.
    _save(pillow_heif.from_pillow(crop), "golden.heic")
    # A camera's HEIF (Sony, Canon): the same picture, major brand mif1 rather than heic.
    data = (HERE / "golden.heic").read_bytes()
    assert data[8:12] == b"heic"
    (HERE / "camera.heif").write_bytes(data[:8] + b"mif1" + data[12:])

    # Stored sideways, as a phone held upright stores it: the pixels rotated, and a HEIF rotation (irot) to
    # display them upright (pillow-heif writes irot/imir from the EXIF orientation it is given).
    wide = Image.open(WIDE).convert("RGB").resize((300, 200), Image.Resampling.LANCZOS)
    sideways = _save(pillow_heif.from_pillow(wide.transpose(Image.Transpose.ROTATE_90)), "sideways.heic",
                     exif=_exif(6))
    assert b"irot" in sideways
    # Orientation 7 (transverse): a rotation and a mirror (irot and imir).
    mirrored = _save(pillow_heif.from_pillow(wide.transpose(Image.Transpose.TRANSVERSE)), "mirrored.heic",
                     exif=_exif(7))
    assert b"irot" in mirrored and b"imir" in mirrored

    # A burst: three pictures, the primary one (the photo a viewer shows) the second stored.
    burst = pillow_heif.HeifFile()
    first = Image.open(sorted(OTHERS[0].glob("*.jpg"))[0]).convert("RGB")
    last = Image.open(sorted(OTHERS[1].glob("*.jpg"))[0]).convert("RGB")
    for im in (first, crop, last):
        burst.add_from_pillow(im)
    _save(burst, "burst.heic", primary_index=1)
    assert pillow_heif.open_heif(HERE / "burst.heic").primary_index == 1

    # 10 bits a channel, as iPhones from the 12 on can store (HDR): 16-bit samples, saved as 10-bit.
    wide16 = (np.asarray(crop, dtype=np.uint16) << 8) | np.asarray(crop, dtype=np.uint16)
    ten = pillow_heif.from_bytes("RGB;16", crop.size, wide16.tobytes())
    _save(ten, "ten-bit.heic")
    assert pillow_heif.open_heif(HERE / "ten-bit.heic", convert_hdr_to_8bit=False).info["bit_depth"] == 10

    # A small thumbnail stored beside the main picture (as every iPhone HEIC has).
    thumbed = pillow_heif.from_pillow(crop)
    thumbed[0].info["thumbnails"] = [64]
    _save(thumbed, "thumbnail.heic")
    assert pillow_heif.open_heif(HERE / "thumbnail.heic").info["thumbnails"]

    for f in sorted(HERE.glob("*.hei[cf]")):
        print(f"{f.name}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
