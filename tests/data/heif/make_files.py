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
import struct
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


DEPTH_AUX_TYPE = b"urn:mpeg:hevc:2015:auxid:2\0"  # HEVC's auxiliary picture type 2: a depth map (ISO/IEC 23008-12)


def _boxes(data: bytes, start: int, end: int):
    """(type, offset, size) of the ISO BMFF boxes between two offsets."""
    while start < end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        yield kind, start, size
        start += size


def _depth_from_thumbnail(data: bytes) -> bytes:
    """A HEIC with a main picture and a thumbnail (item 2, referring to item 1 by 'thmb'), rewritten so that
    item 2 is the main picture's depth map: the reference becomes 'auxl' and item 2 gets an essential auxC
    property naming the depth type. Only the meta box grows; the offsets into mdat move by as much."""
    [(_, meta, meta_size)] = [b for b in _boxes(data, 0, len(data)) if b[0] == b"meta"]
    parts = {kind: (off, size) for kind, off, size in _boxes(data, meta + 12, meta + meta_size)}
    iprp, iprp_size = parts[b"iprp"]
    inner = {kind: (off, size) for kind, off, size in _boxes(data, iprp + 8, iprp + iprp_size)}
    (ipco, ipco_size), (ipma, ipma_size) = inner[b"ipco"], inner[b"ipma"]
    n_properties = len(list(_boxes(data, ipco + 8, ipco + ipco_size)))
    aux_c = struct.pack(">I4sI", 12 + len(DEPTH_AUX_TYPE), b"auxC", 0) + DEPTH_AUX_TYPE
    new_ipco = struct.pack(">I", ipco_size + len(aux_c)) + data[ipco + 4:ipco + ipco_size] + aux_c
    # ipma (version 0, flags 0): entry_count, then item_ID (16 bits), count (8), one byte per association.
    body = data[ipma + 12:ipma + ipma_size]
    entries, pos, out = struct.unpack(">I", body[:4])[0], 4, bytearray(body[:4])
    for _ in range(entries):
        item, count = struct.unpack(">HB", body[pos:pos + 3])
        links = body[pos + 3:pos + 3 + count]
        if item == 2:
            links += bytes([0x80 | (n_properties + 1)])  # essential, the new auxC
        out += struct.pack(">HB", item, len(links)) + links
        pos += 3 + count
    new_ipma = struct.pack(">I4s", 12 + len(out), b"ipma") + data[ipma + 8:ipma + 12] + bytes(out)
    new_iprp = struct.pack(">I4s", 8 + len(new_ipco) + len(new_ipma), b"iprp") + new_ipco + new_ipma
    grown = len(new_iprp) - iprp_size
    children = bytearray(data[meta + 12:meta + meta_size])
    children[iprp - meta - 12:iprp - meta - 12 + iprp_size] = new_iprp
    iref = children.find(b"thmb")
    assert iref > 0
    children[iref:iref + 4] = b"auxl"
    # iloc (version 0, 4-byte offsets, lengths and base offsets): every base offset moves by `grown`.
    iloc = children.find(b"iloc") - 4
    assert children[iloc + 12:iloc + 14] == b"\x44\x40"
    count, pos = struct.unpack(">H", children[iloc + 14:iloc + 16])[0], iloc + 16
    for _ in range(count):
        _item, _ref, base, extents = struct.unpack(">HHIH", children[pos:pos + 10])
        children[pos + 4:pos + 8] = struct.pack(">I", base + grown)
        pos += 10 + 8 * extents
    new_meta = struct.pack(">I", 12 + len(children)) + data[meta + 4:meta + 12] + bytes(children)
    return data[:meta] + new_meta + data[meta + meta_size:]


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

    # A depth map beside the main picture (an iPhone's portrait mode): pillow-heif writes none, so the
    # thumbnail file's second picture is made one (see _depth_from_thumbnail).
    depth = _depth_from_thumbnail((HERE / "thumbnail.heic").read_bytes())
    (HERE / "depth.heic").write_bytes(depth)
    assert len(pillow_heif.open_heif(HERE / "depth.heic").info["depth_images"]) == 1

    for f in sorted(HERE.glob("*.hei[cf]")):
        print(f"{f.name}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
