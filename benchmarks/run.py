#!/usr/bin/env python3
"""dogcat's speed, measured on the same photos in one run: Keras, ONNX Runtime fp32 and int8, the shipped
pipeline at each number of looks (--looks 1, 2, auto: photos/s and looks per photo), `dogcat catalog` end to end
at each, cold start, and memory on a large folder.

    python benchmarks/run.py                       # 200 validation photos, every section that can run
    python benchmarks/run.py --photos 400 --memory-photos 10000 --markdown >> benchmarks/RESULTS.md
    PYTHONPATH=/tmp/heifenc python benchmarks/run.py --heic --repeats 3   # only: HEIC against JPEG

--heic compares the same photos as JPEG and as HEIC (an iPhone's format): decode speed, at the photos' own size
and at an iPhone's 12 megapixels (with the CPU ms a photo, and the part of it inside libheif + libde265), and
`dogcat catalog`'s throughput on each intake. dogcat only decodes HEIC;
encoding the HEIC copies needs pillow-heif (its wheels carry the x265 encoder, GPL-2.0, so it is no dogcat
dependency): pip install --target /tmp/heifenc pillow-heif.

Each rate is photos per second (wall clock, after one warm-up batch), printed with its ratio to the pure
inference rate of the same model and to the compute bound of this CPU: Xception at 299 px is 8.4 billion
multiply-adds a photo, which on 2 cores bounds fp32 near 17 photos/s, and int8 (AVX-512 VNNI) about 4x that.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogcat import images  # noqa: E402
from dogcat.model import (  # noqa: E402
    BreedModel,
    DogDetector,
    ModelError,
    cpu_flags,
    int8_kernels,
)
from dogcat.status import Judge  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "stanford-dogs-crops-224"
BOUND_FP32 = 17.0  # photos/s: the estimate for Xception-299 fp32 on these 2 cores
BOUND_INT8 = 4 * BOUND_FP32


def val_photos(model: BreedModel, n: int) -> list[Path]:
    """n photos spread over the breeds: the model's validation photos, or, for a model trained on every photo
    (dogcat train crossval), which has none left, its training photos (speed does not depend on which)."""
    split = json.loads(model.path.with_suffix(".split.json").read_text())
    split = split["val"] if any(split["val"].values()) else split["train"]
    labels = sorted(split)
    out, i = [], 0
    while len(out) < n:
        label = labels[i % len(labels)]
        names = sorted(split[label])
        if i // len(labels) < len(names):
            out.append(DATA / label / names[i // len(labels)])
        i += 1
    return out


def rate(fn, batches: list, warmup: int = 1) -> float:
    for b in batches[:warmup]:
        fn(b)
    n = sum(len(b) for b in batches)
    t = time.perf_counter()
    for b in batches:
        fn(b)
    return n / (time.perf_counter() - t)


def chunks(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[i:i + size] for i in range(0, len(x), size)]


def keras_rate(pixels: np.ndarray, batch: int) -> float | None:
    """Keras `predict` on the same architecture (Xception-299 + the 1024/512 head); weights do not change speed."""
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
    except ImportError:
        return None
    base = keras.applications.Xception(include_top=False, weights=None, input_shape=pixels.shape[1:],
                                       pooling="avg")
    inputs = keras.Input(pixels.shape[1:])
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Dense(1024, activation="relu")(base(x))
    x = keras.layers.Dense(512, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(120, activation="softmax")(x))
    model.predict(pixels[:batch], batch_size=batch, verbose=0)
    t = time.perf_counter()
    model.predict(pixels, batch_size=batch, verbose=0)
    return len(pixels) / (time.perf_counter() - t)


class PeakRSS:
    """Samples a process's resident memory every 0.2 s: peak, and the value at a few points of the run."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((time.perf_counter(), int(line.split()[1]) / 1024))
            except OSError:
                break
            time.sleep(0.2)

    def stop(self):
        self._stop.set()
        self.thread.join()
        return max((m for _, m in self.samples), default=0.0)


def dogcat_cmd() -> list[str]:
    return [sys.executable, "-m", "dogcat"]


def catalog_run(folder: Path, db: Path, model: Path | None, looks: str = "auto") -> tuple[float, float, list]:
    """(wall seconds, peak MB, RSS samples) of `dogcat catalog folder --db db --quiet` in a fresh process."""
    cmd = (dogcat_cmd() + ["catalog", str(folder), "--db", str(db), "--quiet", "--looks", looks]
           + (["--model", str(model)] if model else []))
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=os.environ | {"PYTHONPATH": str(ROOT)})
    watch = PeakRSS(proc.pid)
    if proc.wait() != 0:
        raise SystemExit(f"catalog failed: {' '.join(cmd)}")
    seconds = time.perf_counter() - t
    return seconds, watch.stop(), watch.samples


def cold_start(photo: Path, model: Path | None, runs: int = 5) -> list[float]:
    cmd = dogcat_cmd() + ["classify", str(photo)] + (["--model", str(model)] if model else [])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
        times.append(time.perf_counter() - t)
    return times


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime as ort

    return (f"{os.cpu_count()} cores ({cpu}; flags include {' '.join(cpu_flags())}), {platform.system()}, "
            f"Python {platform.python_version()}, onnxruntime {ort.__version__}")


def fp32_rate(path: Path | None, shipped: BreedModel, pixels: np.ndarray, batch: int, add) -> float | None:
    """The fp32 model at two looks (its backbone is rebuilt, not committed: dogcat train export-backbone)."""
    if not path or not path.is_file() or path.resolve() == shipped.path.resolve():
        return None
    try:
        m = BreedModel(path)
    except ModelError as e:
        print(f"fp32 model skipped: {e}", flush=True)
        return None
    r = rate(m.probabilities, chunks(pixels, batch))
    add(f"ONNX Runtime fp32, 2 looks ({m.id})", r)
    return r


def looks_section(shipped: BreedModel, pixels: np.ndarray, batch: int, add) -> dict[str, tuple[float, float]]:
    """The breed model alone at each number of looks (a split model; a one-graph model takes its own):
    looks → (photos/s, looks per photo)."""
    looks_rates: dict[str, tuple[float, float]] = {}
    for looks in ("1", "2", "auto") if shipped.backbone is not None else ("auto",):
        judge = Judge.breeds_only(shipped, looks)
        taken: list[np.ndarray] = []
        r = rate(lambda b: taken.append(judge.breed_probabilities(b)[1]), chunks(pixels, batch))  # noqa: B023
        per_photo = float(np.concatenate(taken[1:]).mean())  # the warm-up batch not counted
        looks_rates[looks] = (r, per_photo)
        add(f"ONNX Runtime shipped, --looks {looks} ({shipped.id})", r, f"{per_photo:.2f} looks per photo")
    return looks_rates


def layout_section(shipped: BreedModel, pixels: np.ndarray, batch: int, add) -> list[tuple[str, float]]:
    """Issue 32's cost: the int8 backbone (one look) as dogcat runs it, without ONNX Runtime's NCHWc layout (the
    same features on every CPU), and with ONNX Runtime's defaults (NCHWc on: faster, but its fp32 sums differ
    between AVX2 and AVX-512 CPUs), on this CPU's kernels: the ratio, for the ratios' table."""
    import onnxruntime as ort

    if shipped.backbone is None:
        return []
    name = shipped.card.backbone["input"]
    defaults = ort.InferenceSession(str(shipped.backbone.path), providers=["CPUExecutionProvider"])
    rates = [rate(lambda b: session.run(None, {name: b}), chunks(pixels, batch))  # noqa: B023
             for session in (shipped.backbone.session, defaults)]  # dogcat's own session, then the defaults
    kinds = int8_kernels()
    add(f"backbone, one look, as dogcat runs it (no NCHWc; {kinds})", rates[0], "the same features on every CPU")
    add(f"backbone, one look, ONNX Runtime's defaults ({kinds})", rates[1], "NCHWc on: its fp32 sums per CPU")
    return [("backbone as dogcat runs it / ONNX Runtime's defaults (issue 32)", rates[0] / rates[1])]


KERNEL_TIMING = """
import sys, time, numpy as np
from dogcat.model import BreedModel, int8_kernels
pixels, batch = np.load(sys.argv[1]), int(sys.argv[2])
model = BreedModel(sys.argv[3] or None)
model.features(pixels[:batch])  # warm-up: the session's first run
t = time.perf_counter()
for i in range(0, len(pixels), batch):
    model.features(pixels[i:i + batch])
print(len(pixels) / (time.perf_counter() - t), int8_kernels())
"""


def kernels_section(model: Path | None, pixels: np.ndarray, batch: int, repeats: int, add) -> list[tuple[str, float]]:
    """Issue 32: the int8 backbone (one look, as dogcat runs it) on this CPU's int8 kernels and, on an AMX CPU
    under Linux, on its AVX-512 VNNI kernels too (a process refused AMX: dogcat.train.kernels), the same photos,
    each in a fresh process, taking turns ``repeats`` times, each kind its best: two kinds on one machine in one
    run. (AVX2's kernels need a CPU without AVX-512: their speed is measured only where one runs this.)"""
    pythons = {"this CPU's": [sys.executable]}
    if "amx_int8" in cpu_flags() and sys.platform == "linux":
        pythons["AMX refused"] = [sys.executable, "-m", "dogcat.train.kernels", "--no-amx"]
    best: dict[str, tuple[float, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "pixels.npy", pixels)
        for _ in range(repeats):
            for name, python in pythons.items():
                done = subprocess.run([*python, "-c", KERNEL_TIMING, str(Path(tmp) / "pixels.npy"), str(batch),
                                       str(model or "")], capture_output=True, text=True, check=True)
                r, kinds = done.stdout.split()
                if float(r) > best.get(name, (0.0, ""))[0]:
                    best[name] = float(r), kinds
    for name, (r, kinds) in best.items():
        add(f"backbone, one look, {kinds} kernels ({name})", r, f"best of {repeats}, a fresh process each")
    if len(best) < 2:
        return []
    return [("backbone: VNNI kernels / AMX kernels, same CPU (issue 32)",
             best["AMX refused"][0] / best["this CPU's"][0])]


def print_rate(name: str, r: float, note: str = "") -> None:
    print(f"{name:<52} {r:7.2f} photos/s  {note}", flush=True)


def print_ratios(ratios: list[tuple[str, float]], load_before: float) -> None:
    for name, r in ratios:
        print(f"{name:<52} {r:6.2f}")
    print(f"load average (1 min) {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")


def heic_only(args, shipped: BreedModel, load_before: float) -> None:
    """--heic: heic_section alone, on --photos validation photos."""
    photos = val_photos(shipped, args.photos)
    print(f"{len(photos)} photos, {machine()}", flush=True)
    print_ratios(heic_section(photos, args.model, (shipped.preprocessing, DogDetector().preprocessing),
                              args.repeats, print_rate, args.heic_12mp), load_before)


def kernels_only(args, shipped: BreedModel, load_before: float) -> None:
    """--kernels: kernels_section alone, on --photos validation photos."""
    photos = val_photos(shipped, args.photos)
    print(f"{len(photos)} photos, batch {args.batch}, {machine()}", flush=True)
    pixels = np.stack([images.decode(p, shipped.preprocessing).views[0] for p in photos])
    print_ratios(kernels_section(args.model, pixels, args.batch, max(args.repeats, 1), print_rate), load_before)


def catalog_section(photos: list[Path], model: Path | None, looks_list: list[str], add,
                    repeats: int = 1) -> tuple[dict, float]:
    """`dogcat catalog` end to end in a new process at each number of looks, the same photos into a new
    catalog each time: (looks → photos/s, the auto rate without the process's start-up). With ``repeats``,
    the numbers of looks take turns that many times and each keeps its best run: on a machine shared with
    other jobs, one run per setting compares whatever else was running at the time."""
    catalog_rates: dict[str, float] = {}
    peaks: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "intake"
        folder.mkdir()
        for i, p in enumerate(photos):
            shutil.copy(p, folder / f"{i:05d}-{p.name}")
        for turn in range(repeats):
            for looks in looks_list:
                db_file = Path(tmp) / f"bench-{looks}-{turn}.db"
                seconds, peak, _ = catalog_run(folder, db_file, model, looks)
                if len(photos) / seconds > catalog_rates.get(looks, 0.0):
                    catalog_rates[looks], peaks[looks] = len(photos) / seconds, (seconds, peak)
        for looks in looks_list:
            seconds, peak = peaks[looks]
            add(f"dogcat catalog end to end (new process), --looks {looks}", catalog_rates[looks],
                f"{seconds:.1f} s incl. start-up; peak {peak:.0f} MB" + (f"; best of {repeats}" if repeats > 1 else ""))
        # the process's own start-up (imports, sessions) is part of the wall time: measure it alone too
        startup = statistics.median(cold_start(photos[0], model, runs=3))
        steady = len(photos) / max(len(photos) / catalog_rates["auto"] - startup, 1e-9)
        add("dogcat catalog, --looks auto, start-up excluded", steady, f"(minus a {startup:.2f} s cold classify)")
        seconds2, _, _ = catalog_run(folder, Path(tmp) / "bench-auto-0.db", model)
        add("dogcat catalog re-run, nothing new", len(photos) / seconds2, f"{seconds2:.2f} s")
    return catalog_rates, steady


IPHONE_SIZE = (4032, 3024)  # 12 megapixels: what an iPhone's main camera writes


def decode_rate(paths: list[Path], preps, runs: int = 3) -> tuple[float, float]:
    """dogcat.images.decode as the catalog calls it (one thread, both models' inputs): photos/s of wall clock and
    CPU ms a photo (all the process's threads: libheif decodes a HEIC's tiles in several), best of ``runs``."""
    best, cpu = 0.0, float("inf")
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        for p in paths:
            images.decode(p, *preps)
        best = max(best, len(paths) / (time.perf_counter() - t))
        cpu = min(cpu, (time.process_time() - c) / len(paths) * 1000)
    return best, cpu


def heif_decoder_cpu(paths: list[Path], runs: int = 3) -> float:
    """CPU ms a photo of the HEIF decoder alone (libheif + libde265, to 8-bit RGB), best of ``runs``: the part of
    a HEIC's decode that no change in dogcat.images can touch."""
    decoder = importlib.import_module(next(n for n in images.HEIF_DECODERS if importlib.util.find_spec(n)))
    cpu = float("inf")
    for _ in range(runs):
        c = time.process_time()
        for p in paths:
            _ = decoder.open_heif(p, convert_hdr_to_8bit=True, remove_stride=False)[0].data
        cpu = min(cpu, (time.process_time() - c) / len(paths) * 1000)
    return cpu


def catalog_pair(jpeg_dir: Path, heic_dir: Path, label: str, model: Path | None, repeats: int, add,
                 tmp: Path) -> list[tuple[str, float]]:
    """`dogcat catalog` of the JPEG and the HEIC intake, taking turns (each first in turn) ``repeats`` times.

    Wall-clock rates on a shared machine follow whatever else runs; the CPU time the catalog process spent (user
    + system, all its threads) much less: photos per CPU-second is the rate a machine of its own, kept busy,
    would reach in proportion. Each keeps its best."""
    n = len(list(jpeg_dir.iterdir()))
    best = {"jpeg": 0.0, "heic": 0.0}
    cpu = {"jpeg": float("inf"), "heic": float("inf")}
    for turn in range(repeats):
        pair = [("jpeg", jpeg_dir), ("heic", heic_dir)]
        for kind, folder in pair if turn % 2 == 0 else pair[::-1]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, _, _ = catalog_run(folder, tmp / f"{folder.name}-{turn}.db", model)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            best[kind] = max(best[kind], n / seconds)
            cpu[kind] = min(cpu[kind], after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    for kind in ("jpeg", "heic"):
        add(f"dogcat catalog, {kind.upper()} intake, {label}", best[kind],
            f"best of {repeats}, new process; {cpu[kind]:.1f} CPU s, {n / cpu[kind]:.2f} photos per CPU-second")
    return [(f"HEIC / JPEG catalog, {label}, wall clock (target >= 0.90)", best["heic"] / best["jpeg"]),
            (f"HEIC / JPEG catalog, {label}, per CPU-second (target >= 0.90)", cpu["jpeg"] / cpu["heic"])]


def heic_section(photos: list[Path], model: Path | None, preps, repeats: int, add,
                 n_big: int = 3) -> list[tuple[str, float]]:
    """The same photos as JPEG and as HEIC (quality 90 each, as a phone saves): decode rates and `dogcat
    catalog` end to end on each intake, at the photos' own size and upscaled to an iPhone's 12 megapixels
    (stored as an iPhone does: a grid of 512x512 tiles). Returns the ratios HEIC / JPEG."""
    try:
        import pillow_heif
    except ImportError:
        raise SystemExit("--heic encodes its HEIC copies with pillow-heif, which dogcat does not install (GPL-2.0 "
                         "wheels): pip install --target /tmp/heifenc pillow-heif; PYTHONPATH=/tmp/heifenc") from None
    from PIL import Image

    ratios = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sets = []  # (label, JPEG folder, HEIC folder)
        for label, picked, size in ((f"{len(photos)} photos at their own size", photos, None),
                                    (f"{n_big} photos at 12 MP", photos[:n_big], IPHONE_SIZE)):
            if not picked:
                continue
            jpeg_dir, heic_dir = tmp / f"jpeg-{len(sets)}", tmp / f"heic-{len(sets)}"
            jpeg_dir.mkdir()
            heic_dir.mkdir()
            for i, p in enumerate(picked):
                im = Image.open(p).convert("RGB")
                if size is None:
                    shutil.copy(p, jpeg_dir / f"{i:05d}.jpg")  # the photos as they are
                    pillow_heif.from_pillow(im).save(heic_dir / f"{i:05d}.heic", quality=90)
                else:  # content upscaled: the codecs' cost is per pixel
                    im = im.resize(size, Image.Resampling.BICUBIC)
                    im.save(jpeg_dir / f"{i:05d}.jpg", quality=90)
                    pillow_heif.from_pillow(im).save(heic_dir / f"{i:05d}.heic", quality=90, tile_size=512)
            sets.append((label, jpeg_dir, heic_dir))
        for label, jpeg_dir, heic_dir in sets:
            (jpeg, jpeg_cpu), (heic, heic_cpu) = (decode_rate(sorted(d.iterdir()), preps) for d in (jpeg_dir, heic_dir))
            add(f"decode JPEG, {label}", jpeg, f"{jpeg_cpu:.1f} CPU ms a photo")
            add(f"decode HEIC, {label}", heic, f"{heic / jpeg:.2f} of JPEG's rate; {heic_cpu:.1f} CPU ms a photo, "
                f"{heif_decoder_cpu(sorted(heic_dir.iterdir())):.1f} of them in libheif + libde265")
            ratios.append((f"HEIC / JPEG decode, {label}", heic / jpeg))
            ratios.append((f"HEIC / JPEG decode per CPU ms, {label}", jpeg_cpu / heic_cpu))
        for label, jpeg_dir, heic_dir in sets:
            ratios += catalog_pair(jpeg_dir, heic_dir, label, model, repeats, add, tmp)
    return ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200, help="validation photos for the rate measurements")
    ap.add_argument("--model", type=Path, default=None, help="the shipped breed model (default: bundled)")
    ap.add_argument("--fp32", type=Path, default=ROOT / "models" / "xception-120.onnx",
                    help="the fp32 breed model, to compare with the shipped one")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another breed model (with its .json) timed on the same photos, e.g. the previous "
                         "shipped one: git show REV:dogcat/models/xception-120-int8.onnx > /tmp/prev.onnx (and .json)")
    ap.add_argument("--batch", type=int, default=4, help="photos per ONNX Runtime call")
    ap.add_argument("--repeats", type=int, default=1, help="catalog runs per number of looks, taking turns; each "
                    "keeps its best (a machine shared with other jobs)")
    ap.add_argument("--memory-photos", type=int, default=0, help="also catalog this many distinct photos and "
                    "report peak memory (10000 takes ~10 minutes)")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--heic", action="store_true", help="only compare HEIC with JPEG on the same photos (decode, "
                    "catalog); needs pillow-heif to encode them (see above)")
    ap.add_argument("--heic-12mp", type=int, default=10, help="with --heic: photos also timed and catalogued at 12 "
                    "megapixels (x265 takes a while to encode each)")
    ap.add_argument("--kernels", action="store_true", help="only time the int8 backbone on this CPU's kernels "
                    "and, on an AMX CPU, on its VNNI kernels (AMX refused: dogcat.train.kernels), --repeats turns")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown section for RESULTS.md")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    shipped = BreedModel(args.model)
    if args.kernels:
        return kernels_only(args, shipped, load_before)
    if args.heic:
        return heic_only(args, shipped, load_before)
    detector = DogDetector()
    photos = val_photos(shipped, args.photos)
    prep, dprep = shipped.preprocessing, detector.preprocessing
    t = time.perf_counter()
    views = [images.decode(p, prep, dprep).views for p in photos]
    decode_rate = len(photos) / (time.perf_counter() - t)
    pixels = np.stack([v[0] for v in views])
    dpixels = np.stack([v[1] for v in views])
    rows = []  # (name, photos/s, note)

    def add(name, r, note=""):
        rows.append((name, r, note))
        print(f"{name:<46} {r:7.2f} photos/s  {note}", flush=True)

    print(f"{len(photos)} photos, batch {args.batch}, {machine()}", flush=True)
    add("decode + orient + resize (both inputs), 1 thread", decode_rate)
    keras = None if args.no_keras else keras_rate(pixels, 32)
    if keras:
        add("Keras predict, Xception-299 fp32 (batch 32)", keras)
    fp32 = fp32_rate(args.fp32, shipped, pixels, args.batch, add)
    looks_rates = looks_section(shipped, pixels, args.batch, add)
    layout = layout_section(shipped, pixels, args.batch, add)
    layout += kernels_section(args.model, pixels, args.batch, 1, add)
    ship = looks_rates["auto"][0]
    baseline = None
    if args.baseline:
        b = BreedModel(args.baseline)
        baseline = rate(b.probabilities, chunks(pixels, args.batch))
        add(f"ONNX Runtime baseline ({b.id})", baseline)
    if fp32 is None:
        fp32 = ship if "quantization" not in shipped.card else None
    det = rate(detector.probabilities, chunks(dpixels, args.batch))
    add(f"ONNX Runtime dog detector ({detector.id})", det)
    judge = Judge(shipped, detector)
    pure = rate(lambda b: judge.judge(b, 3), [list(zip(a, c, strict=True)) for a, c in
                                              zip(chunks(pixels, 32), chunks(dpixels, 32), strict=True)])
    add("pure inference: breed model + detector, --looks auto", pure,
        "(the shipped pipeline without decode, hash, database)")

    catalog_rates, cat_rate_steady = catalog_section(photos, args.model, list(looks_rates), add, args.repeats)
    cat_rate = catalog_rates["auto"]

    colds = cold_start(photos[0], args.model)
    print(f"cold start, dogcat classify one photo: median {statistics.median(colds):.2f} s "
          f"(runs: {', '.join(f'{c:.2f}' for c in colds)})", flush=True)

    memory = None
    if args.memory_photos:
        pool = sorted(DATA.glob("*/*.jpg"))[:args.memory_photos]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "intake"
            folder.mkdir()
            for i, p in enumerate(pool):
                os.symlink(p, folder / f"{i:05d}-{p.name}")
            seconds, peak, samples = catalog_run(folder, Path(tmp) / "big.db", args.model)
        t0 = samples[0][0] if samples else 0
        marks = [samples[int(len(samples) * f) - 1] for f in (0.1, 0.25, 0.5, 0.75, 1.0)] if samples else []
        memory = (len(pool), seconds, peak, [(round(t - t0), round(m)) for t, m in marks])
        print(f"catalog of {len(pool)} photos: {seconds:.0f} s ({len(pool) / seconds:.1f} photos/s), peak "
              f"{peak:.0f} MB; RSS (s, MB) at 10/25/50/75/100 % of the run: {memory[3]}", flush=True)

    print("\nratios")
    ratios = [("catalog / pure inference (--looks auto)", cat_rate / pure),
              ("catalog (start-up excluded) / pure inference", cat_rate_steady / pure)]
    ratios += layout
    if "2" in catalog_rates:
        ratios += [("catalog --looks auto / --looks 2 (target >= 1.6)", catalog_rates["auto"] / catalog_rates["2"]),
                   ("breed model --looks auto / --looks 2", looks_rates["auto"][0] / looks_rates["2"][0]),
                   ("breed model --looks 1 / --looks 2", looks_rates["1"][0] / looks_rates["2"][0])]
    if keras:
        ratios.append(("ONNX Runtime shipped / Keras predict", ship / keras))
        if fp32:
            ratios.append(("ONNX Runtime fp32 / Keras predict", fp32 / keras))
    if fp32 and "quantization" in shipped.card:
        ratios.append(("shipped int8 / fp32", ship / fp32))
    if baseline:
        ratios.append(("shipped / baseline", ship / baseline))
    per_photo = looks_rates["auto"][1]
    bound = (BOUND_INT8 if "quantization" in shipped.card else BOUND_FP32) / per_photo
    ratios.append((f"shipped model / compute bound ({bound:.0f} photos/s at {per_photo:.2f} looks)", ship / bound))
    if fp32 and "quantization" in shipped.card:
        ratios.append((f"fp32 (2 looks) / compute bound ({BOUND_FP32 / 2:.1f} photos/s)", fp32 / (BOUND_FP32 / 2)))
    for name, r in ratios:
        print(f"{name:<46} {r:6.2f}")

    if args.markdown:
        print(f"\n### {time.strftime('%Y-%m-%d')}: `python benchmarks/run.py {' '.join(sys.argv[1:])}`\n")
        print(f"Machine: {machine()}. {len(photos)} photos, ONNX Runtime batch {args.batch}. Load average (1 min) "
              f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (above the core count: the "
              "machine was shared).\n")
        print("| what | photos/s | note |\n|---|---:|---|")
        for name, r, note in rows:
            print(f"| {name} | {r:.2f} | {note} |")
        print(f"| cold start: `dogcat classify` one photo | | median {statistics.median(colds):.2f} s of "
              f"{len(colds)} ({', '.join(f'{c:.2f}' for c in colds)}) |")
        if memory:
            print(f"| catalog of {memory[0]} photos | {memory[0] / memory[1]:.2f} | peak {memory[2]:.0f} MB; "
                  f"RSS (s, MB) at 10/25/50/75/100 %: {memory[3]} |")
        print("\n| ratio | value |\n|---|---:|")
        for name, r in ratios:
            print(f"| {name} | {r:.2f} |")


if __name__ == "__main__":
    main()
