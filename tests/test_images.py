"""The one preprocessing path: any photo dogcat can read (JPEG, HEIC/HEIF, PNG, WebP, AVIF ...) → upright RGB →
the model's input array."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogcat import images

PREP = images.Preprocessing(size=(299, 299))


@pytest.fixture(scope="module")
def photo(crops):
    return crops / "n02099601-golden_retriever" / "n02099601_1010.jpg"


@pytest.fixture(scope="module")
def reference(photo):
    return images.load(photo, PREP)


def _grey(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's convert("L")


def _close(a, b, tol):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean()) < tol


def test_load_gives_model_input(reference):
    assert reference.shape == (299, 299, 3) and reference.dtype == np.float32
    assert 0 <= reference.min() and reference.max() <= 255 and reference.std() > 10


def test_exif_orientation_is_applied(photo, reference, tmp_path):
    # Store the pixels rotated and tag them "rotate 90° CW to display" (orientation 6): a camera's portrait shot.
    im = Image.open(photo)
    rotated = im.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    rotated.save(path, quality=95, exif=exif)
    upright = images.load(path, PREP)
    assert _close(upright, reference, 3.0)
    assert not _close(images.to_model_input(Image.open(path).convert("RGB"), PREP), reference, 3.0)


@pytest.mark.parametrize("mode,fmt", [("CMYK", "JPEG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"),
                                      ("RGB", "WEBP"), ("RGB", "BMP")])
def test_modes_and_formats(photo, reference, tmp_path, mode, fmt):
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.open(photo).convert(mode).save(path, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    got = images.load(path, PREP)
    assert got.shape == reference.shape
    if mode == "L":  # grey: compare with the grey version of the reference
        assert _close(got[..., 0], _grey(reference), 2.0) and np.all(got[..., 0] == got[..., 1])
    else:  # a 256-colour palette costs more than JPEG re-encoding
        assert _close(got, reference, 12.0 if mode == "P" else 6.0)


def test_16bit_png_is_scaled_not_clipped(photo, reference, tmp_path):
    grey8 = np.asarray(Image.open(photo).convert("L"), dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(grey8 * 257).save(path)  # 0..255 → 0..65535
    assert Image.open(path).mode.startswith("I")
    got = images.load(path, PREP)
    assert _close(got[..., 0], _grey(reference), 2.0)


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(path)
    assert images.load(path, PREP).min() == 255


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (60, 60), c) for c in ((200, 30, 30), (30, 200, 30))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    px = images.load(path, PREP)
    assert px[..., 0].mean() > 150 and px[..., 1].mean() < 80


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_bytes(b""), "^empty file$"),
    (lambda p: p.write_text("kennel card: Rex, 3 years"), "^not a photo dogcat can read: no picture format"),
    (lambda p: p.write_bytes(b"\xff\xd8\xff not really"), "^a JPEG photo dogcat could not decode: "),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_bad_files_raise_one_line_errors(tmp_path, make, message):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(images.ImageError, match=message) as info:
        images.load(path, PREP)
    assert "\n" not in str(info.value) and "Pillow" not in str(info.value)  # a volunteer's words, no library's


def test_truncated_jpeg(photo, tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(photo.read_bytes()[:2000])
    with pytest.raises(images.ImageError, match="^a JPEG photo dogcat could not decode: the file is cut short"):
        images.load(path, PREP)


def test_missing_file(tmp_path):
    with pytest.raises(images.ImageError, match="no such file"):
        images.load(tmp_path / "nope.jpg", PREP)


def test_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)  # 144 megapixels, a few KB on disk
    with pytest.raises(images.ImageError, match="too large"):
        images.load(path, PREP)


def test_load_batch_names_the_bad_file(photo, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    with pytest.raises(images.ImageError, match="bad.jpg: not a photo dogcat can read"):
        images.load_batch([photo, bad], PREP)


def test_resize_modes_on_a_real_uncropped_photo(originals):
    """stretch squeezes the whole photo; letterbox keeps its aspect and pads with mid-grey; center-crop keeps
    its aspect and cuts the longer side. One decode serves several model inputs."""
    path = sorted((originals / "n02099601-golden_retriever").glob("*.jpg"))[0]
    with Image.open(path) as im:
        width, height = im.size
    assert width != height
    d = images.decode(path, *(images.Preprocessing((224, 224), resize=m) for m in images.RESIZE_MODES))
    stretch, letterbox, crop = d.views
    assert (d.width, d.height) == (width, height) and d.pixels is stretch
    assert all(v.shape == (224, 224, 3) and v.dtype == np.float32 for v in d.views)
    pad_rows = np.all(letterbox == images.PAD_VALUE, axis=(1, 2)) if width > height else \
        np.all(letterbox == images.PAD_VALUE, axis=(0, 2))
    expected_pad = 224 - round(224 * min(width, height) / max(width, height))
    assert abs(int(pad_rows.sum()) - expected_pad) <= 1
    assert not np.any(np.all(crop == images.PAD_VALUE, axis=(1, 2)))
    assert not np.allclose(stretch, crop) and not np.allclose(stretch, letterbox)


def test_resize_modes_agree_on_a_square_photo(photo):
    """The training crops are square: every mode gives them the same pixels, so the mode can change at
    serving time without touching what the model was trained on."""
    views = images.decode(photo, *(images.Preprocessing((299, 299), resize=m) for m in images.RESIZE_MODES)).views
    assert np.array_equal(views[0], views[1]) and np.array_equal(views[0], views[2])


# --- HEIC/HEIF (an iPhone's, a camera's) and AVIF ------------------------------------------------------------
# The HEIF files are real encoder output, committed with the script that made them (tests/data/heif/make_files.py,
# pillow-heif's x265): dogcat itself only decodes. golden.heic and its variants hold `photo` (the fixture above).
HEIF = Path(__file__).parent / "data" / "heif"
ORIENTATION = 0x0112
# The first bytes of a Live Photo's .MOV (QuickTime: an ftyp atom of brand "qt  ", then the atoms): the walk and
# the decoder read no further than these. No video encoder is in the test extra, hence bytes, not a file.
QUICKTIME_MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  \x00\x00\x00\x08wide\x00\x01\x00\x08mdat" + bytes(64)


@pytest.fixture(scope="module")
def wide(originals):
    """The uncropped photo that sideways.heic and mirrored.heic store turned, upright, as make_files.py made it."""
    im = Image.open(originals / "n02099601-golden_retriever" / "n02099601_10.jpg").convert("RGB")
    return im.resize((300, 200), Image.Resampling.LANCZOS)


def test_the_heif_files_are_what_they_claim(monkeypatch):
    """Guards the committed files (a regenerated one must still be a burst, 10-bit, turned ...)."""
    import pi_heif

    monkeypatch.setattr(pi_heif.options, "DEPTH_IMAGES", True)  # dogcat turns it off: it never wants them
    depth = pi_heif.open_heif(HEIF / "depth.heic")
    assert len(depth) == 1 and len(depth.info["depth_images"]) == 1 and depth.info["depth_images"][0].size == (64, 64)
    burst = pi_heif.open_heif(HEIF / "burst.heic")
    assert len(burst) == 3 and burst.primary_index == 1  # the primary picture is not the first stored
    assert pi_heif.open_heif(HEIF / "ten-bit.heic", convert_hdr_to_8bit=False).info["bit_depth"] == 10
    assert b"thmb" in (HEIF / "thumbnail.heic").read_bytes()  # a thumbnail item, referring to the main one
    assert b"irot" in (HEIF / "sideways.heic").read_bytes()
    assert b"irot" in (HEIF / "mirrored.heic").read_bytes() and b"imir" in (HEIF / "mirrored.heic").read_bytes()
    assert (HEIF / "golden.heic").read_bytes()[8:12] == b"heic" and (HEIF / "camera.heif").read_bytes()[8:12] == b"mif1"


@pytest.mark.parametrize("name", ["golden.heic", "camera.heif", "ten-bit.heic", "thumbnail.heic", "depth.heic",
                                  "burst.heic"])
def test_heif_gives_its_main_picture(name, reference):
    """A HEIC, a camera's HEIF, a 10-bit one, one with a thumbnail, one with a depth map, and a burst whose
    primary picture is the second stored: each gives the 224x224 picture the JPEG holds (not the first of the
    burst, not the thumbnail or depth map; 10 bits scaled to 8, not clipped)."""
    d = images.decode(HEIF / name, PREP)
    assert (d.width, d.height) == (224, 224)
    assert d.format == ("HEIF" if name.endswith(".heif") else "HEIC")
    assert _close(d.pixels, reference, 3.0)
    assert _close(images.decode((HEIF / name).read_bytes(), PREP).pixels, d.pixels, 0.001)  # bytes as paths


def test_a_burst_given_as_an_image_gives_its_primary_picture(reference):
    import pi_heif

    pi_heif.register_heif_opener()
    im = Image.open(HEIF / "burst.heic")
    im.seek(0)  # the Python API's caller may hand it over on any frame
    assert not _close(images.to_model_input(im.convert("RGB"), PREP), reference, 3.0)
    assert _close(images.decode(im, PREP).pixels, reference, 3.0)


@pytest.mark.parametrize("name", ["golden.heic", "sideways.heic", "mirrored.heic", "burst.heic", "ten-bit.heic",
                                  "portrait.jpg"])
def test_a_file_read_in_place_gives_the_pixels_of_its_image_handed_over(name, photo, tmp_path):
    """A file dogcat opens is turned where it lies, its pixels not copied (a phone's 12 MP photo: ~30 ms a
    copy); an image the caller hands over is read through copies and left as it was. Both give the same
    pixels, to the last bit, for HEIF rotations, a burst, 10 bits and a JPEG's EXIF orientation."""
    import pi_heif

    pi_heif.register_heif_opener()
    path = HEIF / name
    if name == "portrait.jpg":
        exif = Image.Exif()
        exif[ORIENTATION] = 6
        path = tmp_path / name
        Image.open(photo).transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    read = images.decode(path, PREP, images.Preprocessing(size=(224, 224)))
    with Image.open(path) as given:
        before = (given.size, given.mode, given.getexif().get(ORIENTATION))
        handed = images.decode(given, PREP, images.Preprocessing(size=(224, 224)))
        assert (given.size, given.mode, given.getexif().get(ORIENTATION)) == before
    assert (read.width, read.height) == (handed.width, handed.height)
    assert all(np.array_equal(a, b) for a, b in zip(read.views, handed.views, strict=True))
    opened = images.open_rgb(path)
    assert opened.mode == "RGB" and opened.size == (read.width, read.height) and opened.format is None
    assert np.array_equal(images.to_model_input(opened, PREP), read.pixels)


def test_a_burst_previews_its_primary_picture(photo):
    """jpeg_preview of a burst (the report's thumbnail, ASM3's picture): the primary picture, decoded once."""
    with Image.open(io.BytesIO(images.jpeg_preview(HEIF / "burst.heic", 224, quality=95))) as shown:
        assert shown.size == (224, 224)
        assert _close(images.to_model_input(shown.convert("RGB"), PREP), images.load(photo, PREP), 3.0)


@pytest.mark.parametrize("name", ["sideways.heic", "mirrored.heic"])
def test_heif_rotation_and_mirror_are_applied(name, wide):
    """Stored 200x300 with a rotation (irot; and a mirror, imir) to show it 300x200: read as shown."""
    d = images.decode(HEIF / name, PREP)
    assert (d.width, d.height) == (300, 200)
    assert _close(d.pixels, images.decode(wide, PREP).pixels, 3.0)


def test_avif_read_upright(wide, tmp_path):
    """AVIF (Pillow's own): a photo stored sideways with its orientation, read upright."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path = tmp_path / "sideways.avif"
    wide.transpose(Image.Transpose.ROTATE_90).save(path, "AVIF", quality=80, exif=exif)
    d = images.decode(path, PREP)
    assert d.format == "AVIF" and (d.width, d.height) == (300, 200)
    assert _close(d.pixels, images.decode(wide, PREP).pixels, 4.0)
    with pytest.raises(images.ImageError, match="^an AVIF photo dogcat could not decode: "):
        images.decode(path.read_bytes()[:200], PREP)


@pytest.mark.parametrize("keep", [100, 2000, 0.5, -10])
def test_a_heic_cut_short_names_its_format(keep):
    data = (HEIF / "golden.heic").read_bytes()
    cut = data[:keep if isinstance(keep, int) else int(len(data) * keep)]
    with pytest.raises(images.ImageError, match="^a HEIC photo dogcat could not decode: ") as info:
        images.decode(cut, PREP)
    assert "\n" not in str(info.value) and "Pillow" not in str(info.value)


def test_a_video_is_said_to_be_one():
    assert images.is_video(QUICKTIME_MOV) and images.sniff(QUICKTIME_MOV) is None
    assert not images.is_video((HEIF / "golden.heic").read_bytes()[:images.SNIFF_BYTES])
    with pytest.raises(images.ImageError, match="^a video, not a photo"):
        images.decode(QUICKTIME_MOV, PREP)


def test_heic_previews_are_upright_jpegs():
    """The report's thumbnails and ASM3's pictures (dogcat.previews): a sideways HEIC → an upright JPEG."""
    from dogcat import previews

    path = HEIF / "sideways.heic"
    shown = previews.preview(str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest(), 150)
    assert shown.problem is None and shown.jpeg is not None
    with Image.open(io.BytesIO(shown.jpeg)) as im:
        assert im.format == "JPEG" and im.size == (150, 100)


def test_the_heif_decoder_loads_on_the_first_decode_only():
    """`dogcat --help` and the catalog's listing never load libheif: dogcat.images registers it when decoding."""
    code = ("import sys; from dogcat import images, cli; loaded = lambda: set(images.HEIF_DECODERS) & "
            "set(sys.modules); assert not loaded(); images.decode(sys.argv[1], images.Preprocessing((8, 8))); "
            "assert loaded()")
    done = subprocess.run([sys.executable, "-c", code, str(HEIF / "golden.heic")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
