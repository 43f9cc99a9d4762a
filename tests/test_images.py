"""The one preprocessing path: any photo Pillow can read → upright RGB → the model's input array."""

from __future__ import annotations

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
    (lambda p: p.write_bytes(b""), "not an image"),
    (lambda p: p.write_text("kennel card: Rex, 3 years"), "not an image"),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_bad_files_raise_one_line_errors(tmp_path, make, message):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(images.ImageError, match=message) as info:
        images.load(path, PREP)
    assert "\n" not in str(info.value)


def test_truncated_jpeg(photo, tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(photo.read_bytes()[:2000])
    with pytest.raises(images.ImageError, match="cannot decode"):
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
    with pytest.raises(images.ImageError, match="bad.jpg: not an image"):
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
