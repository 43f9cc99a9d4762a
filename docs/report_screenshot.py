"""README's report screenshot (docs/report-screenshot.jpg), made again with the shipped model:

    python docs/report_screenshot.py            # needs Chromium (`chromium` on PATH, or $DOGCAT_TEST_CHROMIUM)

The README demo's intake (docs/readme_examples.py: Max, Bella, Rex and a loose pug photo) with a cat photo
(scikit-image's sample chelsea.png) and a truncated JPEG added, Max corrected by staff as a beagle mix; then
`dogcat report` and headless Chromium at 640 pixels wide, saved as a JPEG under 150 kB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import readme_examples as r

OUT = r.ROOT / "docs" / "report-screenshot.jpg"
WIDTH = 640


def main() -> None:
    import skimage
    from PIL import Image

    folder = r.DEMO / "screenshot"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(r.demo() / "intake", folder / "intake")
    Image.fromarray(skimage.data.chelsea()).save(folder / "intake" / "cat.png")
    whole = r._photo("n02099601-golden_retriever", 2).read_bytes()
    (folder / "intake" / "IMG_0107.jpg").write_bytes(whole[: len(whole) // 3])  # truncated: cannot be read
    print(r.run("dogcat catalog intake --db shelter.db --quiet", folder), end="")
    correct = "dogcat correct A1001 --breed beagle --breed2 'mixed breed' --by alice --db shelter.db"
    print(r.run(correct, folder), end="")
    print(r.run("dogcat report --db shelter.db -o report.html --title 'Intake, week 23'", folder), end="")
    chromium = os.environ.get("DOGCAT_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("no Chromium: install it (apt-get install chromium) or set DOGCAT_TEST_CHROMIUM")
    with tempfile.TemporaryDirectory() as profile:
        png = folder / "report.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={WIDTH},4000", f"--screenshot={png}",
                        (folder / "report.html").as_uri()], check=True, capture_output=True, timeout=120)
    shot = Image.open(png).convert("RGB")
    # The window is taller than the page: cut the blank rows below it.
    pixels = shot.load()
    background = pixels[WIDTH - 1, shot.height - 1]
    bottom = shot.height
    while bottom > 1 and all(pixels[x, bottom - 1] == background for x in range(0, WIDTH, 4)):
        bottom -= 1
    shot = shot.crop((0, 0, WIDTH, min(shot.height, bottom + 16)))
    for quality in (80, 70, 60, 50, 40):
        shot.save(OUT, "JPEG", quality=quality, optimize=True, progressive=True)
        if OUT.stat().st_size < 150_000:
            break
    size = OUT.stat().st_size / 1000
    print(f"{OUT.relative_to(r.ROOT)}: {shot.width}x{shot.height}, {size:.0f} kB, quality {quality}")


if __name__ == "__main__":
    main()
