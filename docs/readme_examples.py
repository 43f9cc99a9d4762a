"""README's sample outputs, made by running the commands it shows (with cog, as sqlite-utils does).

    cog -I docs -r README.md docs/classify.md docs/reference.md docs/asm3.md   # rewrite the outputs
    cog --check -I docs README.md docs/classify.md ...   # tests/test_readme.py: fails when one disagrees

Each output block in README.md and docs/*.md sits between ``[[[cog`` and ``[[[end]]]`` comments that call the functions
here. The demo shelter is built from the photos checked into tests/data/stanford-dogs, so this needs neither
../shared nor the network; it lives in a fixed folder (``DEMO``) so that the paths printed are the same on
every run. Tables are rendered 110 columns wide, without colour.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "stanford-dogs" / "stanford-dogs-crops-224"
DEMO = Path(tempfile.gettempdir()) / "dogcat-readme"
ENV = {**os.environ, "COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb", "PYTHONPATH": str(ROOT), "USER": "alice"}

# The demo intake: a folder per animal, as intake staff keep them, and a photo lying loose.
ANIMALS = {"A1001-Max": [("n02088364-beagle", 0), ("n02088364-beagle", 1), ("n02088364-beagle", 2)],
           "A1002-Bella": [("n02099601-golden_retriever", 0), ("n02099601-golden_retriever", 1)],
           "A1003-Rex": [("n02110185-Siberian_husky", 0), ("n02109961-Eskimo_dog", 0)]}
CORRECTIONS = ["correct A1003 --breed 'siberian husky' --by alice",
               "correct A1001 --breed beagle --breed2 labrador --by alice"]


def run(command: str, cwd: Path = ROOT) -> str:
    """`dogcat ARGS` (this checkout's) in ``cwd``: what it prints, stdout then stderr."""
    args = shlex.split(command)
    assert args[0] == "dogcat", command
    done = subprocess.run([sys.executable, "-m", "dogcat", *args[1:]], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)
    return done.stdout + done.stderr


def run_unshown(command: str, cwd: Path) -> str:
    """`dogcat ARGS` whose output no page shows (the demos' corrections by staff), in this process with typer's
    runner when this process's dogcat is this checkout's: the same code without a process's start for each (cog
    runs in tests/test_readme.py's process). What it printed, stdout and stderr."""
    import dogcat

    if Path(dogcat.__file__).resolve().parent != ROOT / "dogcat":  # another copy installed: this checkout's
        return run(command, cwd)
    from typer.testing import CliRunner

    from dogcat.cli import app

    args = shlex.split(command)
    assert args[0] == "dogcat", command
    here = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, args[1:], prog_name="dogcat", catch_exceptions=False,
                                  env={k: ENV[k] for k in ("COLUMNS", "NO_COLOR", "TERM", "USER")})
    finally:
        os.chdir(here)
    return done.output


def console(command: str, cwd: Path = ROOT, shown: str | None = None, keep=None) -> str:
    """A ```console block's body: the prompt line, then the output (only the lines ``keep`` keeps)."""
    output = run(command, cwd)
    lines = [line.rstrip() for line in output.splitlines()]
    if keep is not None:
        lines = keep(lines)
    return "\n".join([f"$ {shown or command}", *lines])


def _photo(label: str, i: int) -> Path:
    return sorted((PHOTOS / label).glob("*.jpg"))[i]


_catalogued = False


def demo(corrected: bool = False) -> Path:
    """The demo shelter (``DEMO``/shelter.db): catalogued afresh once per run of cog, then copied for each
    block, and with ``corrected`` corrected by staff as README shows."""
    global _catalogued
    base = DEMO / "catalogued.db"
    if not _catalogued:
        shutil.rmtree(DEMO, ignore_errors=True)
        for folder, photos in ANIMALS.items():
            (DEMO / "intake" / folder).mkdir(parents=True)
            for label, i in photos:
                shutil.copy(_photo(label, i), DEMO / "intake" / folder / _photo(label, i).name)
        shutil.copy(_photo("n02110958-pug", 0), DEMO / "intake" / "IMG_0042.jpg")
        out = run(f"dogcat catalog intake --db {base.name} --quiet", DEMO)
        assert not out.strip(), out
        _catalogued = True
    shutil.copy(base, DEMO / "shelter.db")
    if corrected:
        for command in CORRECTIONS:
            out = run_unshown(f"dogcat {command} --db shelter.db", DEMO)
            assert "corrected" in out, out
    return DEMO


def one_json_line_indented(line: str) -> str:
    """A JSON record as README shows it: one key a line, top_k's guesses one a line."""
    record = json.loads(line)
    inner = []
    for key, value in record.items():
        if key == "top_k":
            guesses = ",\n".join("  " + json.dumps(g, ensure_ascii=False) for g in value)
            inner.append(f' "top_k": [\n{guesses}\n ]')
        else:
            inner.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(inner) + "\n}"


def classify_json(photo: str) -> str:
    line = run(f"dogcat classify --json {photo}").strip()
    return (f"$ dogcat classify --json {photo}   # one line; shown indented here\n"
            + one_json_line_indented(line))


def classify_examples() -> str:
    photos = " ".join(sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.jpg")))
    return console(f"dogcat classify {photos}", shown="dogcat classify examples/*.jpg")


def cat_and_husky() -> str:
    """A cat (scikit-image's chelsea.png, as tests/not_dogs.py has it) and the husky of the demo."""
    import skimage
    from PIL import Image

    folder = demo() / "odd"
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage.data.chelsea()).save(folder / "cat.png")
    husky = _photo("n02110185-Siberian_husky", 0)
    shutil.copy(husky, folder / "husky.jpg")
    # The two commands that make the same files from this folder, shown as README shows them.
    made = ["$ python -c \"import skimage, PIL.Image; PIL.Image.fromarray(skimage.data.chelsea()).save('cat.png')\"",
            f"$ cp {husky.relative_to(ROOT)} husky.jpg"]
    return "\n".join([*made, console("dogcat classify cat.png husky.jpg", folder)])


def animals_demo() -> str:
    folder = demo()
    listing = "  ".join(p.name + ("/" if p.is_dir() else "") for p in sorted((folder / "intake").iterdir()))
    return "\n".join(["$ ls -F intake", listing, "$ dogcat catalog intake --db shelter.db --quiet",
                      console("dogcat animals --db shelter.db", folder, keep=lambda lines: lines[:-1])])


def animal_show_demo() -> str:
    """Rex before any correction (a correction would carry today's time)."""
    return console("dogcat animals show A1003 --db shelter.db", demo())


def corrections_demo() -> str:
    folder = demo()
    shown = [console(f"dogcat {command} --db shelter.db", folder) for command in CORRECTIONS]
    return "\n".join([*shown, console("dogcat evaluate --db shelter.db", folder)])


def per_animal_demo() -> str:
    """Bella's record (the model's answer; a corrected one would carry today's time)."""
    folder = demo(corrected=True)
    return console("dogcat export --db shelter.db --per animal --format jsonl", folder,
                   shown="dogcat export --db shelter.db --per animal --format jsonl | sed -n 2p",
                   keep=lambda lines: lines[1:2])


def asm3_demo() -> str:
    """A shelter that keeps its animals in ASM3: its own export (tests/data/asm3/asm3-animals.csv, what ASM3's
    "export animals as CSV" wrote for ../shared/asm3/shelter.py's six dogs) pulled into a catalog of three
    intake folders, two of them dogs ASM3 has; then what the import file holds (images and the log's date
    left out: they change with the photos and the day)."""
    import csv

    folder = DEMO / "asm3"
    shutil.rmtree(folder, ignore_errors=True)
    for name, label, n in (("A1001-Rex", "n02106662-German_shepherd", 2), ("A1003 Daisy", "n02088364-beagle", 1),
                           ("A1007-Pip", "n02110958-pug", 2)):
        (folder / "intake" / name).mkdir(parents=True)
        for i in range(n):
            shutil.copy(_photo(label, i), folder / "intake" / name / _photo(label, i).name)
    shutil.copy(ROOT / "tests" / "data" / "asm3" / "asm3-animals.csv", folder / "asm3-animals.csv")
    out = run("dogcat catalog intake --db shelter.db --quiet", folder)
    assert not out.strip(), out
    shown = [console("dogcat asm3 pull asm3-animals.csv --db shelter.db", folder),
             console("dogcat export --db shelter.db --format asm3 -o asm3-import.csv", folder),
             console("dogcat export --db shelter.db --format asm3 --age 1 -o asm3-import.csv", folder,
                     keep=lambda lines: [line.split("; recorded")[0] + "; recorded ..." for line in lines])]
    columns = ("ANIMALCODE", "ANIMALNAME", "ANIMALBREED1", "ANIMALBREED2", "ANIMALAGE", "ANIMALIMAGE", "LOGCOMMENTS")
    with open(folder / "asm3-import.csv", newline="", encoding="utf-8") as f:
        rows = [[r[c][:24] + "…" if c == "ANIMALIMAGE" and r[c] else r[c] for c in columns]
                for r in csv.DictReader(f)]
    shown.append("$ # asm3-import.csv, some of its columns:")
    shown += [" | ".join(columns)] + [" | ".join(r).rstrip() for r in rows]
    shown.append(console("dogcat export --db shelter.db --format asm3 --age 1 -o asm3-import-2.csv", folder))
    return "\n".join(shown)


def teach_demo() -> str:
    """A shelter whose staff call American Staffordshire Terriers "Pit Bull Terrier" (not one of the model's
    120 breeds): eight such dogs labelled among 24, a dog found outside, then what dogcat teach makes of it and
    which animals look most like the found dog's photo."""
    folder = DEMO / "teach"
    shutil.rmtree(folder, ignore_errors=True)
    amstaff = "n02093428-American_Staffordshire_terrier"
    intake = [(f"A20{i:02d}", amstaff, i) for i in range(8)]
    others = ("n02085620-Chihuahua", "n02088364-beagle", "n02086079-Pekinese", "n02085936-Maltese_dog",
              "n02085782-Japanese_spaniel", "n02099601-golden_retriever", "n02086910-papillon",
              "n02093256-Staffordshire_bullterrier")
    intake += [(f"A21{2 * i + j:02d}", label, j) for i, label in enumerate(others) for j in range(2)]
    for code, label, i in intake:
        (folder / "intake" / code).mkdir(parents=True)
        shutil.copy(_photo(label, i), folder / "intake" / code / _photo(label, i).name)
    (folder / "found").mkdir()
    shutil.copy(_photo(amstaff, 10), folder / "found" / "found-dog.jpg")
    out = run("dogcat catalog intake --db shelter.db --quiet", folder)
    assert not out.strip(), out
    for code, _, _ in intake[:8]:
        out = run_unshown(f"dogcat correct {code} --breed 'pit bull' --db shelter.db", folder)
        assert "corrected" in out, out
    shown = ["$ # staff said 'pit bull' for the 8 dogs A2000 … A2007 (dogcat correct A2000 --breed 'pit bull' …)",
             console("dogcat teach --db shelter.db -o shelter-model.onnx", folder),
             console("dogcat classify found/found-dog.jpg", folder),
             console("dogcat classify found/found-dog.jpg --model shelter-model.onnx", folder),
             console("dogcat similar found/found-dog.jpg --db shelter.db --top 3", folder)]
    return "\n".join(shown)


def made_on() -> str:
    """Which model made these outputs: the same on every x86-64 CPU since issue 32 (tests/test_readme.py compares
    them exactly everywhere)."""
    from dogcat.model import BreedModel

    return (f"<!-- The outputs above were made by {BreedModel().id}; ONNX Runtime computes the same on AVX2, "
            "AVX-512 VNNI and AMX CPUs (tests/test_same_answer.py) -->\n")
