"""Real photos without a dog, from the sample data of PyPI packages (so CI has them without the internet).

scikit-image's sample photographs (BSD-3 / public domain; see skimage/data/README.txt) and matplotlib's
photo of Grace Hopper. Drawings and test patterns in the same folders (chessboard, colour wheel, logo,
phantom, a horse silhouette) are left out: the goal is about photos. Used by tests/test_status.py and by the
model card's measurement:

    python tests/not_dogs.py /tmp/not-dogs && dogcat evaluate /tmp/not-dogs --not-dogs
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SKIMAGE_PHOTOS = [
    "astronaut.png",  # a person
    "brick.png", "camera.png", "cell.png", "chelsea.png",  # a cat
    "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
    "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "no_time_for_that_tiny.gif",
    "page.png",  # a page of text, like a kennel card
    "retina.jpg", "rocket.jpg", "text.png",
]


def photos() -> list[Path]:
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    found = [data / name for name in SKIMAGE_PHOTOS]
    found.append(Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    missing = [str(p) for p in found if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"sample photos missing: {', '.join(missing)}")
    return found


def link_into(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in photos():
        target = folder / p.name
        if not target.exists():
            os.symlink(p, target)
        out.append(target)
    return out


if __name__ == "__main__":
    print("\n".join(str(p) for p in link_into(Path(sys.argv[1]))))
