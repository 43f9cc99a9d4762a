"""Backbone features, computed once per photo and cached on disk.

A frozen backbone gives the same features every epoch, and on a 2-core CPU it is ~99 % of the cost of an
epoch: so each class folder's features are computed once and saved as one .npy file, keyed by backbone,
weights, preprocessing and the folder's contents. A killed extraction resumes at the class it was on.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dogcat import images, model
from dogcat.train.data import ClassFolder


def cache_root() -> Path:
    return model.cache_root() / "features"


def cache_dir(backbone: str, weights_id: str, prep: images.Preprocessing, mirrored: bool = False) -> Path:
    h, w = prep.size
    return cache_root() / (f"{backbone}-{weights_id}-{h}x{w}-{prep.resize}-{prep.resample}"
                           + ("-mirrored" if mirrored else ""))


def mirrored(predict):
    """`predict` on each photo's mirror image (left and right swapped): a second view of every training photo
    that is just as much a photo of that breed."""
    return lambda batch: predict(np.ascontiguousarray(batch[:, :, ::-1, :]))


def _batches(paths, prep, batch_size):
    """Decode the next batch in a background thread while the backbone works on this one."""
    chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(images.load_batch, chunk, prep) for chunk in chunks[:1]]
        for i in range(len(chunks)):
            batch = pending.pop().result()
            if i + 1 < len(chunks):
                pending.append(pool.submit(images.load_batch, chunks[i + 1], prep))
            yield batch


def extract(predict, paths, prep, batch_size=32, on_batch=None):
    """`predict`: NHWC pixel batch → (N, D) features, or a list of such arrays (a model with several outputs).

    Returns the features of all `paths` in the same form."""
    out = [predict(batch) for batch in _progress(_batches(list(paths), prep, batch_size), on_batch)]
    if out and isinstance(out[0], list):
        return [np.concatenate([_array(o[i]) for o in out]) for i in range(len(out[0]))]
    return np.concatenate([_array(o) for o in out])


def _array(output) -> np.ndarray:
    """float32, unless `predict` chose float16 (block-13 activations: it halves a 7 GB cache)."""
    a = np.asarray(output)
    return a if a.dtype == np.float16 else a.astype(np.float32, copy=False)


def _progress(batches, on_batch):
    for batch in batches:
        yield batch
        if on_batch:
            on_batch(len(batch))


def _save(target: Path, feats: np.ndarray):
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    os.replace(tmp, target)  # atomic: a killed run never leaves a half-written cache file


def class_features(predict, classes: list[ClassFolder], prep: images.Preprocessing, directory: Path | None,
                   batch_size: int = 32, progress=None) -> dict[str, np.ndarray]:
    """Features of every file of every class (rows in `ClassFolder.files` order), from cache when possible.

    `directory` None disables caching (e.g. randomly initialised backbones, whose features mean nothing twice).
    `progress(n_done_images, n_total_images)` is called as work advances."""
    return class_features_multi(lambda batch: [predict(batch)], classes, prep, [directory], batch_size,
                                progress)[0]


def class_features_multi(predict, classes: list[ClassFolder], prep: images.Preprocessing,
                         directories: list[Path | None], batch_size: int = 32,
                         progress=None) -> list[dict[str, np.ndarray]]:
    """As class_features for a backbone with several outputs (`predict` returns one array per directory):
    one pass over the photos fills every output's cache."""
    total = sum(len(c.files) for c in classes)
    done = 0
    lock = threading.Lock()
    results: list[dict[str, np.ndarray]] = [{} for _ in directories]
    for c in classes:
        name = f"{c.label}-{c.fingerprint()[:16]}.npy"
        targets = [d / name if d else None for d in directories]
        found = [t for t in targets if t is not None and t.exists()]
        if len(found) == len(targets):
            for result, cached in zip(results, found, strict=True):
                result[c.label] = np.load(cached)
            done += len(c.files)
            if progress:
                progress(done, total)
            continue

        def advance(n):
            nonlocal done
            with lock:
                done += n
            if progress:
                progress(done, total)

        outputs = extract(predict, c.files, prep, batch_size, advance)
        for result, target, feats in zip(results, targets, outputs, strict=True):
            if target is not None:
                _save(target, feats)
            result[c.label] = feats
    return results
