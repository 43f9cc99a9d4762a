"""How well does `dogcat teach` learn a breed it never knew, and how well does `dogcat similar` find look-alikes?

    python benchmarks/teach.py [--data ../shared/data/stanford-dogs-crops-224] [--ks 3,5,10] [--breeds 120]
                               [--l2 3e-4] [--markdown]

Leave one breed out, for every breed of Stanford Dogs' 120 in ../shared: each breed's crops are split in two
halves (seeded). A head is fitted on half A with the shipped head's recipe (multinomial logistic regression,
C 0.01 → 0.03 → 0.1, scikit-learn); half B is never trained on. For breed b, b's column is removed (the model
now knows 119 breeds) and half A becomes the shelter's catalog: k of b's photos carry the staff's word for b,
every other photo is unlabelled (b's other photos in half A too, as in a shelter where staff labelled only some)
and `dogcat teach`'s own rule (dogcat.teach.plan and fit) makes the 120th column. Measured on half B:

- new breed answered: of b's photos, the share the taught model answers with b;
- others taken: of the other breeds' photos, the share the taught model answers with b;
- others' top-1: the other breeds' photos answered right, against the 120-breed head's on the same photos
  (so the drop is what teaching b costs the breeds that were there; b's photos are not in it);
- dog right: of the photos the taught model answers `dog` (top confidence >= the shipped card's
  unsure_below), the share answered right (b's photos right when answered with b).

Caveat, which flatters the new breed slightly: the 119 columns were fitted with b's half-A photos among their
negatives (they learnt "not one of us" for b), as a shelter's model never has for its own new word; and the
backbone, pretrained on ImageNet, has seen these photos' originals (../shared/data/README.md).

`similar`: every half-B photo is an animal of its own; each is the query against the others, by cosine
similarity of the catalog's features: of the top 5, the share of the query's breed. Its speed is measured on
10,000 photos in a SQLite catalog made for it (dogcat.similar, the command's own path).

Features: the int8 backbone's, one look (what the catalog keeps for ~88 % of photos), computed once into
~/.cache/dogcat/bench-teach/<backbone id> (about 25 min for 17,456 crops on 2 cores, AVX2).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dogcat import heads, images, teach
from dogcat.model import BreedModel, cache_root, cpu_flags

ROOT = Path(__file__).resolve().parents[1]


def cache_folder(model: BreedModel) -> Path:
    """Where this benchmark keeps what it computed from the model's backbone (its features, the half-A head):
    one folder per backbone (the first 12 hex digits of its SHA-256, as `dogcat train looks` names its cache),
    since another backbone's features are another model's (issue 32 changed it)."""
    backbone = (model.card.backbone or {}).get("sha256", "")[:12] or model.id.split("@")[-1]  # a one-graph model
    folder = cache_root() / "bench-teach" / backbone
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def features(data: Path, model: BreedModel, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """First-look features of every crop (one .npy per breed under the cache: a killed run resumes)."""
    folder = cache_folder(model)
    xs, ys = [], []
    t0 = time.time()
    for i, label in enumerate(labels):
        target = folder / f"{label}.npy"
        if not target.exists():
            files = sorted((data / label).glob("*.jpg"))
            feats = [model.features(images.load_batch(files[j:j + 16], model.preprocessing)).astype(np.float16)
                     for j in range(0, len(files), 16)]
            np.save(str(target) + ".tmp.npy", np.concatenate(feats))
            os.replace(str(target) + ".tmp.npy", target)
            print(f"  features: {label} ({time.time() - t0:.0f} s)", file=sys.stderr)
        x = np.load(target).astype(np.float32)
        xs.append(x)
        ys.append(np.full(len(x), i))
    return np.concatenate(xs), np.concatenate(ys)


def halves(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """True for half A (the catalog), per breed, seeded."""
    rng = np.random.default_rng(seed)
    a = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        a[idx[: len(idx) // 2]] = True
    return a


def base_head(x: np.ndarray, y: np.ndarray, folder: Path) -> heads.Head:
    """The shipped head's recipe on half A (cached in the backbone's ``folder``: a few minutes of L-BFGS)."""
    cache = folder / f"head-A-{len(y)}.npz"
    if cache.exists():
        got = np.load(cache)
        return heads.Head(got["w"], got["b"])
    from dogcat.train.crossval import logreg_path

    *_, (_, fitted) = logreg_path(x, y, int(y.max()) + 1, (0.01, 0.03, 0.1))  # the last: C = 0.1
    head = heads.Head(fitted.coef_.T.astype(np.float32), fitted.intercept_.astype(np.float32))
    np.savez(cache, w=head.weights, b=head.bias)
    return head


def leave_one_out(head: heads.Head, xa, ya, xb, yb, b: int, k: int, rng, sure: float, l2: float,
                  renamed: bool, negatives_sure: float = teach.NEGATIVES_SURE) -> dict:
    keep = np.setdiff1d(np.arange(head.classes), [b])
    base = heads.Head(head.weights[:, keep], head.bias[keep])
    labels = [str(c) for c in keep]
    mine = np.flatnonzero(ya == b)
    taught = rng.choice(mine, size=min(k, len(mine)), replace=False)
    words: list[str | None] = [None] * len(ya)
    for i in taught:
        words[i] = "new"
    probs = base.probabilities(xa)
    lesson = teach.plan(labels, words, probs.argmax(axis=1), probs.max(axis=1), min_photos=k,
                        sure=negatives_sure, renamed=renamed)
    new_head = teach.fit(base, lesson, xa, l2=l2)
    pb = new_head.probabilities(xb)
    answer = pb.argmax(axis=1)
    new_col = base.classes
    truth = np.where(yb == b, new_col, np.searchsorted(keep, yb))
    is_b = yb == b
    right = answer == truth
    dog = pb.max(axis=1) >= sure
    full_right = head.logits(xb[~is_b]).argmax(axis=1) == yb[~is_b]
    return {"answered": float((answer[is_b] == new_col).mean()), "taken": float((answer[~is_b] == new_col).mean()),
            "others_top1": float(right[~is_b].mean()), "full_top1": float(full_right.mean()),
            "dog_right": float(right[dog].mean()), "dog_share": float(dog.mean())}


def corrected(head: heads.Head, x: np.ndarray, y: np.ndarray, b_half: np.ndarray, share: float, k: int,
              l2: float, seed: int = 0) -> dict:
    """What staff corrected among the model's own breeds: half B split again (seeded, per breed) into a
    catalog (B1) and photos to measure on (B2); staff correct ``share`` of the B1 photos the model answers
    wrongly (to the true breed), every other B1 photo is unlabelled; teach refits the columns with at least k
    corrections, from where they were (dogcat.teach.plan(refit=True)). Top-1 and dog answers on B2, before and
    after."""
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(b_half)
    first = np.zeros(len(y), bool)
    for c in np.unique(y[idx]):
        mine = rng.permutation(idx[y[idx] == c])
        first[mine[: len(mine) // 2]] = True
    b1, b2 = np.flatnonzero(first), np.flatnonzero(b_half & ~first)
    labels = [str(c) for c in range(head.classes)]
    probs = head.probabilities(x[b1])
    wrong = np.flatnonzero(probs.argmax(axis=1) != y[b1])
    told = rng.choice(wrong, size=int(round(share * len(wrong))), replace=False)
    words: list[str | None] = [None] * len(b1)
    for i in told:
        words[i] = str(y[b1][i])
    lesson = teach.plan(labels, words, probs.argmax(axis=1), probs.max(axis=1), min_photos=k, refit=True)
    taught = teach.fit(head, lesson, x[b1], l2=l2)
    out = {"corrected": len(told), "refit": len(lesson.refit)}
    for name, h in (("before", head), ("after", taught)):
        p = h.probabilities(x[b2])
        right = p.argmax(axis=1) == y[b2]
        dog = p.max(axis=1) >= 0.8
        out[name] = {"top1": float(right.mean()), "dog_right": float(right[dog].mean()), "dog_share": float(dog.mean())}
    return out


def retrieval(x: np.ndarray, y: np.ndarray, top: int = 5) -> float:
    from dogcat.similar import normalized

    v = normalized(x)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    best = np.argpartition(-sims, top, axis=1)[:, :top]
    return float((y[best] == y[:, None]).mean())


def synthetic_catalog(path: Path, x: np.ndarray, labels: list[str], words: dict[int, str]) -> object:
    """A SQLite catalog of len(x) photos, each an animal of its own, with their real features and the shipped
    model's answers from them (as a catalog run records them), and a staff correction for photo i saying
    ``words[i]``: what teach and similar read, without 25 minutes of backbone."""
    import json

    from dogcat import breeds, db, heads

    model = BreedModel()
    head = heads.read(model.path, "features")
    probs = head.probabilities(x)
    engine = db.connect(str(path))
    at = db.now()
    rows: dict = {t: [] for t in ("photos", "files", "features", "animals", "animal_files", "predictions",
                                  "corrections")}
    for i in range(len(x)):
        sha, path_key, code = f"{i:064x}", f"/bench/A{i:05d}/photo.jpg", f"A{i:05d}"
        top = np.argsort(-probs[i])[:3]
        guesses = [{"label": labels[j], "breed": model.breeds[j], "confidence": round(float(probs[i, j]), 6)}
                   for j in top]
        rows["photos"].append({"sha256": sha, "size": 1, "first_seen_at": at})
        rows["files"].append({"path": path_key, "sha256": sha, "size": 1, "mtime_ns": 0, "catalogued_at": at,
                              "updated_at": at})
        rows["features"].append({"sha256": sha, "backbone": model.backbone_id, "looks": 1,
                                 "vector": db.feature_bytes(x[i]), "computed_at": at})
        rows["animals"].append({"code": code, "name": code, "key": f"bench:{i}", "created_at": at})
        rows["animal_files"].append({"path": path_key, "animal": code, "grouped_by": "bench", "grouped_at": at})
        rows["predictions"].append({"sha256": sha, "model_id": model.id, "label": guesses[0]["label"],
                                    "breed": guesses[0]["breed"], "confidence": guesses[0]["confidence"],
                                    "top_k": json.dumps(guesses), "catalogued_at": at,
                                    "status": "dog" if guesses[0]["confidence"] >= 0.8 else "unsure"})
        if i in words:
            try:
                said = breeds.resolve(words[i])
            except breeds.UnknownBreed:  # a shelter's own word, as dogcat asm3 pull keeps one
                said = breeds.BreedWords(words[i], None, words[i], None)
            rows["corrections"].append({"target_kind": "photo", "target": sha, "status": "dog",
                                        "label": said.label1, "label2": None, "breed": said.breed1,
                                        "breed2": None if said.breed2 == said.breed1 else said.breed2,
                                        "source": "staff", "corrected_by": "bench", "corrected_at": at})
    with db.writing(engine) as conn:
        conn.execute(db.models.insert(), [{"id": model.id, "name": model.card.name, "first_used_at": at,
                                           "labels": json.dumps(labels)}])
        for name, table_rows in rows.items():
            if table_rows:
                conn.execute(getattr(db, name).insert(), table_rows)
    return engine


def similar_speed(x: np.ndarray, labels: list[str], photo: Path, n: int = 10_000) -> dict:
    """dogcat.similar over an n-photo catalog (real features, repeated to n), timed in this run: an animal's code
    as the query (the search alone, and with the answers the command prints), and a photo not catalogued (one
    more look by the backbone, its session already loaded)."""
    from dogcat import similar

    model = BreedModel()
    with tempfile.TemporaryDirectory() as tmp:
        engine = synthetic_catalog(Path(tmp) / "bench.db", np.resize(x, (n, x.shape[1])), labels, {})
        similar.by_photo(engine, model, photo, top=5)  # loads the backbone's session
        times: dict[str, list[float]] = {"code": [], "code_answers": [], "photo": []}
        for _ in range(3):
            for what, call in (("code", lambda: similar.by_animal(engine, model.backbone_id, "A00007", top=5)),
                               ("code_answers", lambda: similar.by_animal(engine, model.backbone_id, "A00007",
                                                                         top=5, answers=True)),
                               ("photo", lambda: similar.by_photo(engine, model, photo, top=5, answers=True))):
                t0 = time.perf_counter()
                assert len(call()) == 5
                times[what].append(time.perf_counter() - t0)
        engine.dispose()
    return {"photos": n} | {what: min(t) for what, t in times.items()}


def teach_speed(x: np.ndarray, y: np.ndarray, labels: list[str], n: int = 5000, seed: int = 0) -> dict:
    """`dogcat teach`'s work (dogcat.teach.teach: read the catalog, fit, measure out of fold, write) on an
    n-photo catalog whose staff gave 3 words of their own to 10 photos each, timed in this run."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(x), n, replace=False)
    words: dict[int, str] = {}
    for word, breed in (("Pit Bull Terrier", 29), ("Mixed Breed", 60), ("Labrador Retriever mix", 90)):
        for i in np.flatnonzero(y[picked] == breed % (int(y.max()) + 1))[:10]:
            words[int(i)] = word
    with tempfile.TemporaryDirectory() as tmp:
        engine = synthetic_catalog(Path(tmp) / "bench.db", x[picked], labels, words)
        t0 = time.perf_counter()
        taught = teach.teach(engine, BreedModel(), Path(tmp) / "taught.onnx")
        seconds = time.perf_counter() - t0
        engine.dispose()
    return {"photos": n, "seconds": seconds, "added": taught.added}


def mixed_breed(head: heads.Head, xa, ya, xb, yb, b: int, k: int, rng, share: float, l2: float,
                old_rule: bool = True) -> dict:
    """Leave breed b out as leave_one_out does (k of its half-A photos carry its word), and label ``share`` of
    the other half-A photos "Mixed Breed" (each an animal of its own): others' top-1 on half B under the
    shipped rule (a word of no look is not taught: dogcat.breeds.look_word), and under the old one ("Mixed
    Breed" a column, as teach did before issue 31: a column of thousands of photos, minutes a breed on 2 cores;
    ``old_rule=False`` leaves it out)."""
    from dogcat import breeds

    keep = np.setdiff1d(np.arange(head.classes), [b])
    base = heads.Head(head.weights[:, keep], head.bias[keep])
    labels = [str(c) for c in keep]
    mine = np.flatnonzero(ya == b)
    taught = rng.choice(mine, size=min(k, len(mine)), replace=False)
    others = np.setdiff1d(np.arange(len(ya)), mine)
    mixed = rng.choice(others, size=int(round(share * len(others))), replace=False)
    probs = base.probabilities(xa)
    out = {}
    rules = (("shipped", breeds.look_word(breeds.MIXED_BREED, breeds.MIXED_BREED)), ("old", breeds.MIXED_BREED))
    for rule, word in rules[:2 if old_rule else 1]:
        words: list[str | None] = [None] * len(ya)
        for i in mixed:
            words[i] = word
        for i in taught:
            words[i] = "new"
        lesson = teach.plan(labels, words, probs.argmax(axis=1), probs.max(axis=1), min_photos=k)
        new_head = teach.fit(base, lesson, xa, l2=l2)
        answer = new_head.logits(xb).argmax(axis=1)
        truth = np.searchsorted(keep, yb)
        is_b = yb == b
        out[rule] = float((answer[~is_b] == truth[~is_b]).mean())
    out["full_top1"] = float((head.logits(xb[yb != b]).argmax(axis=1) == yb[yb != b]).mean())
    return out


def many_words(x: np.ndarray, y: np.ndarray, labels: list[str], n_words: int = 1000, per_word: int = 5,
               n: int = 10_000, seed: int = 0) -> dict:
    """`dogcat teach` (dogcat.teach.teach: read the catalog, fit, measure out of fold, write) on an n-photo
    catalog (the real features, repeated to n) where staff gave ``n_words`` words of their own to ``per_word``
    photos each, each word the photos of one breed: timed in this run. Taught with anyway=True: many words
    share a breed here, and take each other's photos."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(x), n, replace=n > len(x))
    pool = {c: list(rng.permutation(np.flatnonzero(y[picked] == c))) for c in np.unique(y[picked])}
    words: dict[int, str] = {}
    for w in range(n_words):
        c = rng.choice([c for c, left in pool.items() if len(left) >= per_word])
        for _ in range(per_word):
            words[int(pool[c].pop())] = f"Shelter word {w:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        engine = synthetic_catalog(Path(tmp) / "bench.db", x[picked], labels, words)
        steps: list[tuple] = []
        t0 = time.perf_counter()
        taught = teach.teach(engine, BreedModel(), Path(tmp) / "taught.onnx", anyway=True,
                             progress=lambda d, t, what: steps.append((time.perf_counter() - t0, what, d, t)))
        seconds = time.perf_counter() - t0
        engine.dispose()
    return {"photos": n, "words": len(taught.added), "seconds": seconds, "progress_calls": len(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/stanford-dogs-crops-224")
    parser.add_argument("--ks", default="3,5,10", help="labelled photos per left-out breed ('': skip those "
                        "figures, e.g. to run only the many-words timing with --mixed-share 0 --skip-similar)")
    parser.add_argument("--breeds", type=int, default=120, help="the first N breeds left out in turn")
    parser.add_argument("--l2", type=float, default=teach.L2)
    parser.add_argument("--no-renamed", action="store_true", help="keep the taken-over answers as negatives")
    parser.add_argument("--negatives-sure", type=float, default=teach.NEGATIVES_SURE,
                        help="an unlabelled photo counts against the new word when the model is this sure of it")
    parser.add_argument("--skip-teach", action="store_true")
    parser.add_argument("--skip-similar", action="store_true")
    parser.add_argument("--corrections", action="store_true",
                        help="also: refitting the model's own breeds from staff corrections (half B split again)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--feature-breeds", type=int, default=120,
                        help="only the first N breeds' crops (a documented subset, when features for all would "
                             "take too long)")
    parser.add_argument("--mixed-share", type=float, default=0.6,
                        help="the share of other photos labelled Mixed Breed in the mixed-breed figure")
    parser.add_argument("--no-old-rule", action="store_true", help="in the mixed-breed figure, leave out "
                        "\"Mixed Breed\" taught as a column (the rule before issue 31: minutes a breed)")
    parser.add_argument("--words", type=int, default=1000, help="words in the many-words timing (0: skip it)")
    args = parser.parse_args()
    model = BreedModel()
    sure = float(model.card.decision.get("unsure_below", 0.8))
    x, y = features(args.data, model, model.labels[:args.feature_breeds])
    a = halves(y)
    print(f"teach: l2 {args.l2:g}, unlabelled photos against the new word when the model is >= "
          f"{args.negatives_sure:g} sure, renamed answers {'kept' if args.no_renamed else 'left out'}")
    print(f"{len(y)} crops, {int(y.max()) + 1} breeds; half A {a.sum()} (the catalog), half B {(~a).sum()}; "
          f"CPU: {platform.machine()} {os.cpu_count()} cores, flags {' '.join(cpu_flags())}")
    t0 = time.time()
    head = base_head(x[a], y[a], cache_folder(model))
    top1 = (head.logits(x[~a]).argmax(1) == y[~a]).mean()
    print(f"half-A head: {time.time() - t0:.0f} s; top-1 on half B {top1:.4f}")
    rows = []
    if not args.skip_teach:
        for k in [int(v) for v in args.ks.split(",") if v.strip()]:
            rng = np.random.default_rng(k)
            got = []
            t0 = time.time()
            for b in range(min(args.breeds, head.classes)):
                got.append(leave_one_out(head, x[a], y[a], x[~a], y[~a], b, k, rng, sure, args.l2,
                                         not args.no_renamed, args.negatives_sure))
            answered = np.array([g["answered"] for g in got])
            row = {"k": k, "answered": answered.mean(), "worst": answered.min(),
                   "taken": np.mean([g["taken"] for g in got]),
                   "others_top1": np.mean([g["others_top1"] for g in got]),
                   "full_top1": np.mean([g["full_top1"] for g in got]),
                   "dog_right": np.mean([g["dog_right"] for g in got]),
                   "dog_share": np.mean([g["dog_share"] for g in got]),
                   "fit_s": (time.time() - t0) / min(args.breeds, head.classes)}
            rows.append(row)
            print(f"k={k}: answered {row['answered']:.3f} (worst {row['worst']:.2f}), taken {row['taken']:.4%}, "
                  f"others' top-1 {row['others_top1']:.4f} vs {row['full_top1']:.4f} (a drop of "
                  f"{100 * (row['full_top1'] - row['others_top1']):.3f} points), dog right "
                  f"{row['dog_right']:.4f} ({row['dog_share']:.3f} answered dog), {row['fit_s']:.2f} s a breed",
                  flush=True)
    if not args.skip_teach and args.mixed_share > 0:
        rng = np.random.default_rng(99)
        mixes = [mixed_breed(head, x[a], y[a], x[~a], y[~a], b, 5, rng, args.mixed_share, args.l2,
                             old_rule=not args.no_old_rule) for b in range(min(args.breeds, head.classes))]
        full = np.mean([g["full_top1"] for g in mixes])
        for rule in [r for r in ("shipped", "old") if mixes and r in mixes[0]]:  # "old": unless --no-old-rule
            top = np.mean([g[rule] for g in mixes])
            print(f"mixed breed: {args.mixed_share:.0%} of other photos labelled Mixed Breed, k=5, rule {rule}: "
                  f"others' top-1 {top:.4f} vs {full:.4f} (a drop of {100 * (full - top):.3f} points)", flush=True)
    if not args.skip_teach and args.words:
        timed = many_words(x[a], y[a], model.labels, n_words=args.words)
        print(f"many words: {timed['words']} words x 5 photos on {timed['photos']} photos: {timed['seconds']:.1f} "
              f"s (read the catalog, fit, {teach.FOLDS}-fold figures, write; {timed['progress_calls']} progress "
              f"reports)", flush=True)
    if args.corrections:
        for share in (0.5, 1.0):
            for k in (3, 5):
                got = corrected(head, x, y, ~a, share, k, args.l2)
                print(f"corrections: {share:.0%} of the catalog's wrong answers corrected ({got['corrected']} "
                      f"photos), columns with >= {k} refitted ({got['refit']}): top-1 {got['before']['top1']:.4f} "
                      f"-> {got['after']['top1']:.4f}, dog right {got['before']['dog_right']:.4f} -> "
                      f"{got['after']['dog_right']:.4f} ({got['before']['dog_share']:.3f} -> "
                      f"{got['after']['dog_share']:.3f} answered dog)", flush=True)
    if not args.skip_similar:
        hit5 = retrieval(x[~a], y[~a])
        photo = ROOT / "examples" / "beagle-crop.jpg"
        speed = similar_speed(x[~a], model.labels, photo)
        print(f"similar: top-5 same breed {hit5:.3f} ({(~a).sum()} photos, each against the others); over "
              f"{speed['photos']} photos: {speed['code']:.3f} s an animal's code, {speed['code_answers']:.3f} s "
              f"with the 5 animals' answers (what the command prints), {speed['photo']:.3f} s a photo not "
              f"catalogued ({photo.name}: one look by the backbone, its session loaded)")
        took = teach_speed(x[a], y[a], model.labels)
        print(f"teach: {took['photos']} photos, {sum(took['added'].values())} labelled with 3 words of the "
              f"shelter's: {took['seconds']:.1f} s (read the catalog, fit, {teach.FOLDS}-fold figures, write)")
    if args.markdown:
        print("\n| labelled photos k | new breed answered (mean, worst) | others taken for it | others' top-1 "
              "(120-breed head; drop in points) | dog answers right |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['k']} | {r['answered']:.3f} ({r['worst']:.2f}) | {r['taken']:.3%} | "
                  f"{r['others_top1']:.4f} ({r['full_top1']:.4f}; {100 * (r['full_top1'] - r['others_top1']):.3f}) | "
                  f"{r['dog_right']:.4f} |")


if __name__ == "__main__":
    main()
