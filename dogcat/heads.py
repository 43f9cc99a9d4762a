"""A split model's head (features → probabilities: one dense layer and a softmax) as numbers: read from its ONNX
graph, given new columns fitted on features, written back as a small ONNX graph.

Why a head of its own: a shelter's model (``dogcat teach``) is the shipped model's head with a column per breed
word of the shelter's, on the same backbone, so teaching never runs the backbone again (the catalog keeps every
photo's features) and the taught model is a file of ~1 MB beside the 22 MB backbone it shares.

The fits change only the columns they are given, the others frozen: what the shipped model knows stays as it
was, and a new column has to win its photos against the columns that were there. :func:`fit_columns` is a
multinomial logistic regression in those columns (softmax over all columns, cross-entropy, an L2 penalty that
pulls each column towards where it started), jointly; :func:`fit_new_columns`, what teach uses, fits each new
column on its own against the frozen ones (the same problem for one column), on its photos and its hardest
negatives, so that a thousand words cost a thousand times one. The problems are convex and small: L-BFGS
(:func:`fit_columns`) and Newton's method (:func:`fit_new_columns`, on each column's rows' Gram matrix, one
product for the catalog) in a few lines of numpy solve them, so teaching needs no solver library.

Needs numpy, and onnx to read or write a graph (imported inside the functions that do).

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dogcat.modelcard import ModelError

OPSET = 17  # what the exported heads use (tf2onnx's default opset when the shipped model was exported)


@dataclass
class Head:
    """softmax(features @ weights + bias): weights (n_features, n_classes), bias (n_classes,), float32."""

    weights: np.ndarray
    bias: np.ndarray

    @property
    def classes(self) -> int:
        return int(self.weights.shape[1])

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features.astype(np.float32, copy=False) @ self.weights + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features))

    def with_columns(self, n: int) -> Head:
        """This head and ``n`` new columns after its own (zero weights; a bias that never wins until fitted)."""
        low = float(self.bias.min()) - 10.0
        return Head(np.concatenate([self.weights, np.zeros((self.weights.shape[0], n), np.float32)], axis=1),
                    np.concatenate([self.bias, np.full(n, low, np.float32)]))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def read(path: str | Path, input_name: str) -> Head:
    """The head in an ONNX graph ``input_name`` → Gemm (or MatMul, Add) → Softmax, as tf2onnx exports a Keras
    Dense(softmax) layer and :func:`write` writes one. ModelError for any other graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ops = [n.op_type for n in graph.node]
    try:
        if ops == ["Gemm", "Softmax"]:
            gemm = graph.node[0]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
            if gemm.input[0] != input_name or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 \
                    or attrs.get("beta", 1.0) != 1.0:
                raise KeyError(gemm.name)
            weights = constants[gemm.input[1]]
            weights = weights.T if attrs.get("transB", 0) else weights
            bias = constants[gemm.input[2]]
        elif ops == ["MatMul", "Add", "Softmax"]:
            weights = constants[graph.node[0].input[1]]
            bias = next(constants[i] for i in graph.node[1].input if i in constants)
        else:
            raise KeyError(ops)
    except (KeyError, StopIteration):
        raise ModelError(f"{path}: not a head dogcat can teach (one dense layer and a softmax on "
                         f"{input_name!r}); its graph is {' → '.join(ops)}") from None
    return Head(np.asarray(weights, np.float32), np.broadcast_to(np.asarray(bias, np.float32),
                                                                 (weights.shape[1],)).copy())


def to_bytes(head: Head, input_name: str, output_name: str) -> bytes:
    """The head as an ONNX graph: ``input_name`` (N, n_features) → Gemm → Softmax → ``output_name``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_features, n_classes = head.weights.shape
    graph = helper.make_graph(
        [helper.make_node("Gemm", [input_name, "head_weights", "head_bias"], ["head_logits"], name="head"),
         helper.make_node("Softmax", ["head_logits"], [output_name], axis=-1, name="probabilities")],
        "dogcat_head",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", n_classes])],
        initializer=[numpy_helper.from_array(head.weights.astype(np.float32), "head_weights"),
                     numpy_helper.from_array(head.bias.astype(np.float32), "head_bias")])
    made = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dogcat teach")
    made.ir_version = 8  # what ONNX Runtime 1.17 (the oldest dogcat allows) reads
    onnx.checker.check_model(made)
    return made.SerializeToString()


def write(head: Head, path: str | Path, input_name: str, output_name: str) -> Path:
    """The head as an ONNX graph file (:func:`to_bytes`), through a temporary file of its own."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(to_bytes(head, input_name, output_name))
        os.replace(tmp, path)  # never half a file under the model's name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def fit_columns(head: Head, columns: list[int], features: np.ndarray, targets: np.ndarray,
                weights: np.ndarray, l2: float, max_steps: int = 200, tolerance: float = 1e-6) -> Head:
    """``head`` with ``columns`` refitted, every other column frozen.

    Minimises mean weighted cross-entropy of softmax over all columns, for each photo's ``targets`` (a column
    index) with its ``weights``, plus ``l2``/2 × the squared distance of each fitted column's weights from where
    it started (a new column starts at 0: an ordinary L2 penalty). Convex, so solved by L-BFGS (as
    scikit-learn's LogisticRegression solves the shipped head) until the gradient is below ``tolerance``."""
    x = features.astype(np.float32, copy=False)
    cols = np.asarray(columns, int)
    frozen = np.setdiff1d(np.arange(head.classes), cols)
    frozen_logits = x @ head.weights[:, frozen] + head.bias[frozen]
    top = frozen_logits.max(axis=1, keepdims=True)
    frozen_mass = np.exp(frozen_logits - top).sum(axis=1, keepdims=True)  # the frozen part of the softmax's sum
    start_w = head.weights[:, cols].astype(np.float64)
    n_features, n_cols = start_w.shape
    # Where a photo's target is a fitted column: a one-hot over the fitted columns (zero rows elsewhere).
    onehot = (targets[:, None] == cols[None, :]).astype(np.float32)
    sample = (weights / weights.sum()).astype(np.float32)
    others = ~onehot.any(axis=1)
    # The frozen columns' part of the loss, -log p(target), needs the target's frozen logit.
    target_frozen = np.zeros(len(x), np.float32)
    position = {int(c): i for i, c in enumerate(frozen)}
    rows = np.flatnonzero(others)
    target_frozen[rows] = frozen_logits[rows, [position[int(t)] for t in targets[rows]]] - top[rows, 0]

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[:-n_cols].reshape(n_features, n_cols).astype(np.float32)
        b = theta[-n_cols:].astype(np.float32)
        z = np.minimum(x @ w + b - top, 80.0)
        ez = np.exp(z)
        total = frozen_mass[:, 0] + ez.sum(axis=1)
        own = np.where(others, target_frozen, (z * onehot).sum(axis=1))
        loss = float(sample @ (np.log(total) - own)) + 0.5 * l2 * float(((w - start_w) ** 2).sum())
        g = sample[:, None] * (ez / total[:, None] - onehot)
        grad_w = (x.T @ g).astype(np.float64) + l2 * (w - start_w)
        return loss, np.concatenate([grad_w.ravel(), g.sum(axis=0).astype(np.float64)])

    theta = _lbfgs(loss_and_gradient, np.concatenate([start_w.ravel(), head.bias[cols].astype(np.float64)]),
                   max_steps, tolerance)
    fitted = Head(head.weights.copy(), head.bias.copy())
    fitted.weights[:, cols] = theta[:-n_cols].reshape(n_features, n_cols)
    fitted.bias[cols] = theta[-n_cols:]
    return fitted


WORKING_ROWS = 160  # a new column's hardest negatives first fitted against (then any that it would take: verified)
# A negative outside a column's rows that it gives more than this probability joins its rows (at most
# WORKING_ROWS a round, the most taken first). benchmarks/teach.py (35 breeds, k = 5): at 1e-4 the same figures as
# the joint fit over every photo (0.952 answered, 0.538 % taken); at 1e-2, 0.962 and 0.616 %.
TAKES = 0.0001
# Columns fitted side by side (threads): each column's work is a few hundred rows' inverses and products, which
# numpy runs without the GIL. benchmarks/teach.py's 1,000 words on 2 cores: 51 s, against 74 s one at a time.
FIT_THREADS = min(4, os.cpu_count() or 1)
ROUNDS = 3  # fits of the rows, at most, until no negative outside them is taken
# The catalog's Gram matrix (every used photo's features against every other's, float32) is made once for all
# new columns when it has at most this many photos (12,000: 576 MB); a larger catalog gets each column's own.
GRAM_PHOTOS = 12_000
# Newton stops when half its decrement (what the step would still lower the loss by, in the loss's units: a
# mean over the photos) is below this: the weights are then within ~1e-6 of the optimum.
DECREMENT = 1e-14


@dataclass
class NewColumns:
    """New columns fitted one by one against a frozen head (:func:`fit_new_columns`): each one's weights and
    bias, the photos it was fitted on (its rows), and its weights as a combination of those rows' features."""

    weights: np.ndarray  # (n_features, n_new)
    bias: np.ndarray  # (n_new,)
    rows: list[np.ndarray]  # per column: its rows (indices into the features it was fitted on), positives first
    alphas: list[np.ndarray] | None = None  # per column: weights = features[rows].T @ alpha


def fit_new_columns(base: Head, features: np.ndarray, targets: np.ndarray, weights: np.ndarray, l2: float,
                    rows: list[np.ndarray] | None = None, steps: int = 200, n_new: int | None = None,
                    progress=None, folds: list[np.ndarray] | None = None, start: NewColumns | None = None):
    """New columns after ``base``'s (which stay frozen), one per column index ``targets`` names beyond
    ``base.classes``, each fitted on its own.

    Column c minimises, over every photo i with a target (weights ``weights``, normalised to sum to 1), the
    weighted cross-entropy of "c or not c" under the softmax of base's columns and c, plus ``l2``/2 × |w_c|^2.
    Alone among new columns that is exactly :func:`fit_columns`'s problem; with several, each column is fitted
    against the frozen ones and against the other new columns' photos (as "not c"), not jointly with the others
    — which is what makes the cost linear in the number of columns. The problem is convex; solved on a column's
    rows (its photos and its hardest negatives: those most like its photos, then any negative the fitted column
    would give more than TAKES probability, until none is left out), so a step costs a few hundred photos, not
    the catalog: a negative left out is one the column gives almost nothing. ``rows``: the rows of a fit before
    (out-of-fold fits reuse the full fit's, checked there); ``start``: that fit, which the fits start from.
    ``progress(done, total)``: columns fitted. ``folds``: masks of photos held out; then a list, the columns
    fitted without each."""
    x = np.asarray(features, np.float32)
    if n_new is None:
        n_new = int(targets.max()) + 1 - base.classes if len(targets) and targets.max() >= base.classes else 0
    d = x.shape[1]
    if n_new <= 0:
        empty = NewColumns(np.zeros((d, 0), np.float32), np.zeros(0, np.float32), [])
        return [empty for _ in folds] if folds is not None else empty
    used = (targets >= 0) & (weights > 0)
    sample = np.where(used, weights, 0).astype(np.float64)
    sample /= max(float(sample.sum()), 1e-30)
    logits = base.logits(x)
    top = logits.max(axis=1)
    offset = -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))  # -log Σ exp(frozen logits)
    positives = [np.flatnonzero(used & (targets == base.classes + c)) for c in range(n_new)]
    fixed_rows = rows is not None
    if rows is None:
        rows = _hardest(x, used, positives, WORKING_ROWS)
    gram = _gram(x, used)
    todo = list(range(n_new))
    if folds is not None:  # each fold's columns, fitted without its photos, on the rows given
        kept = [np.where(held, 0.0, sample) for held in folds]
        fits = [_Fits(d, n_new, start) for _ in folds]
        _fit_rows(x, offset, [k / max(float(k.sum()), 1e-30) for k in kept], targets, base.classes, rows, fits,
                  todo, l2, gram, steps, progress)
        return [NewColumns(f.weights, f.bias.astype(np.float32), rows, f.alphas) for f in fits]
    fit = _Fits(d, n_new, start)
    for round_ in range(1 if fixed_rows else ROUNDS):
        _fit_rows(x, offset, [sample], targets, base.classes, rows, [fit], todo, l2, gram, steps,
                  progress if round_ == 0 else None)
        if fixed_rows or round_ == ROUNDS - 1:
            break
        # Any negative outside a column's rows that it would take joins them, and the column is fitted again.
        u = x[used] @ fit.weights[:, todo] + fit.bias[todo] + offset[used, None]
        where = np.flatnonzero(used)
        again = []
        for k, c in enumerate(todo):
            over = u[:, k] > np.log(TAKES / (1 - TAKES))
            outside = np.setdiff1d(where[over], rows[c])
            outside = outside[targets[outside] != base.classes + c]
            if len(outside):  # the most taken first, WORKING_ROWS a round at most: a column's cost stays bounded
                score = dict(zip(where[over].tolist(), u[over, k].tolist(), strict=True))
                outside = np.array(sorted(outside.tolist(), key=lambda i: -score[i])[:WORKING_ROWS], int)
                rows[c] = np.concatenate([rows[c], outside])
                again.append(c)
        if not again:
            break
        todo = again
    return NewColumns(fit.weights, fit.bias.astype(np.float32), rows, fit.alphas)


class _Fits:
    """One fit's columns as they are being fitted: weights, biases, and each column's coefficients on its rows
    (None: not fitted yet), started from ``start`` (a fit on the same or fewer rows) when given."""

    def __init__(self, d: int, n_new: int, start: NewColumns | None):
        self.weights = np.zeros((d, n_new), np.float32)
        self.bias = np.zeros(n_new)
        self.alphas: list = [None] * n_new
        if start is not None and start.alphas is not None:
            self.weights[:] = start.weights
            self.bias[:] = start.bias
            self.alphas = list(start.alphas)


def _hardest(x: np.ndarray, used: np.ndarray, positives: list[np.ndarray], most: int) -> list[np.ndarray]:
    """Per column: its positives, then the ``most`` other used photos most like them (cosine to their mean)."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    means = np.stack([unit[p].mean(axis=0) if len(p) else np.zeros(x.shape[1], np.float32) for p in positives])
    out = []
    candidates = np.flatnonzero(used)
    for start in range(0, len(positives), 256):  # (photos x columns) similarities, 256 columns at a time
        sims = unit[candidates] @ means[start:start + 256].T
        for k in range(sims.shape[1]):
            c = start + k
            score = sims[:, k].copy()
            score[np.isin(candidates, positives[c])] = -np.inf
            take = min(most, int(np.isfinite(score).sum()))
            best = candidates[np.argpartition(-score, take - 1)[:take]] if take else candidates[:0]
            out.append(np.concatenate([positives[c], best]))
    return out


def _gram(x: np.ndarray, used: np.ndarray):
    """rows → their features' Gram matrix (float64). Every column's rows are used photos: when there are at most
    GRAM_PHOTOS of them, one matrix product for all (a column's is then a lookup: the columns' rows overlap, and
    each round would otherwise compute theirs again); else each column's own."""
    where = np.flatnonzero(used)
    if len(where) > GRAM_PHOTOS:
        return lambda r: (x[r] @ x[r].T).astype(np.float64)
    position = np.full(len(x), -1)
    position[where] = np.arange(len(where))
    xu = x[where]
    whole = xu @ xu.T
    return lambda r: whole[np.ix_(position[r], position[r])].astype(np.float64)


def _fit_rows(x, offset, samples, targets, first_new, rows, fits, todo, l2, gram, steps, progress) -> None:
    """Fit the columns ``todo`` on their rows, once per sample weighting in ``samples`` (the full fit's, or each
    fold's: the result goes to the same place in ``fits``), each column from where its fit in ``fits`` was.

    A column's loss sees its weights only through its rows' features, and its penalty is |w|^2, so the best
    weights lie in the span of those rows: w = X_rᵀα, and the problem is solved in α with the rows' Gram matrix
    K = X_r X_rᵀ (looked up once a column for all its fits), by Newton's method (:func:`_newton`), all of a
    column's fits (the folds) at once. Columns are independent: FIT_THREADS fit them side by side (numpy's
    inverses and products release the GIL; each column writes only its own place)."""

    def fit_column(c: int) -> None:
        r = rows[c]
        k = gram(r)
        y = (targets[r] == first_new + c).astype(np.float64)
        o = offset[r]
        s = np.stack([sample[r] for sample in samples])
        alpha = np.zeros((len(samples), len(r)))
        b = np.zeros(len(samples))
        for f, fit in enumerate(fits):
            before = fit.alphas[c]
            if before is not None:  # fitted before on these rows, or on the first of them
                alpha[f, :len(before)] = before
                b[f] = fit.bias[c]
            else:  # a fresh column starts where its photos are at even odds
                mine = (y > 0) & (s[f] > 0)
                b[f] = -float(np.median(o[mine])) if mine.any() else 0.0
        # Fits that start from one fit (the folds from the full fit) start with one Hessian: the mean of theirs.
        alpha, b = _newton(k, y, s, o, l2, alpha, b, steps,
                           shared=len(fits) > 1 and all(f.alphas[c] is not None for f in fits))
        weights = x[r].T @ alpha.T.astype(np.float32)
        for f, fit in enumerate(fits):
            fit.alphas[c] = alpha[f]
            fit.bias[c] = b[f]
            fit.weights[:, c] = weights[:, f]

    threads = min(FIT_THREADS, len(todo))
    with contextlib.ExitStack() as stack:
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            from threadpoolctl import threadpool_limits

            # Each thread's products are small: BLAS's own threads under these would fight them (200 words on
            # 2 cores: 10.4 s with one BLAS thread each, 15.8 s with BLAS's two, 14.0 s one column at a time).
            stack.enter_context(threadpool_limits(1, user_api="blas"))
            pool = ThreadPoolExecutor(threads)
            # On the way out (an error, Ctrl-C) the columns not started are dropped, not fitted first.
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
            done = pool.map(fit_column, todo)
        else:
            done = map(fit_column, todo)
        for n, _ in enumerate(done):  # in order: the progress counts columns fitted
            if progress and (n + 1 == len(todo) or (n + 1) % 10 == 0):
                progress(n + 1, len(todo))


def _newton(k: np.ndarray, y: np.ndarray, s: np.ndarray, o: np.ndarray, l2: float, alpha: np.ndarray,
            b: np.ndarray, steps: int, shared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For each fit f (the rows of ``s``: its sample weights on the same rows), minimise
    Σ s_f·(log(1 + e^u) - y·u) + l2/2·αᵀKα, u = Kα + b + o, by Newton's method in (w, b) with a backtracking
    line search, from ``alpha`` (fits × rows) and ``b``; returns them fitted.

    A step needs the Hessian's inverse, (l2·I + D·K)⁻¹ in α (D: each row's curvature s·p·(1-p); the
    push-through identity), an m³ inverse. A fit gets it again only when its last step did not cut the
    decrement (what a step would still lower the loss by) by a fifth, or was shortened; else the one before
    serves: the step is then a little off Newton's, a descent all the same, and the gradient is exact, so the
    optimum is the problem's. Stops when half the decrement is below DECREMENT. ``shared``: the fits start at
    one point (the folds, from the full fit): one Hessian for all to start, that of their mean weighting, kept
    until a fit's decrement no longer falls by a tenth a step (a fold differs from the full fit by a fifth of the
    rows: an inverse costs as much as ~20 steps)."""
    n_fits, m = s.shape
    ka = alpha @ k
    eye = np.eye(m)

    def losses(u: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        return (s * (np.logaddexp(0.0, u) - y * u)).sum(axis=1) + 0.5 * l2 * penalty

    u = ka + b[:, None] + o
    loss = losses(u, (alpha * ka).sum(axis=1))
    before = np.full(n_fits, np.inf)
    going = np.ones(n_fits, bool)
    stale = np.ones(n_fits, bool)
    inverse = np.empty((n_fits, m, m), np.float32)  # an approximate inverse does: it only shapes the steps
    curv = np.empty((n_fits, m))
    slow = 0.8
    if shared:
        p = 0.5 * (1.0 + np.tanh(0.5 * u[0]))
        curv[:] = s.mean(axis=0) * p * (1.0 - p)
        inverse[:] = np.linalg.inv((l2 * eye + curv[0, :, None] * k).astype(np.float32))
        stale[:] = False
        slow = 0.9
    for _ in range(steps):
        p = 0.5 * (1.0 + np.tanh(0.5 * u))  # the sigmoid, without overflow
        g = s * (p - y)
        v = g + l2 * alpha  # the gradient in w is X_rᵀv, in b Σg
        redo = np.flatnonzero(stale & going)
        if len(redo):
            curv[redo] = s[redo] * p[redo] * (1.0 - p[redo])
            inverse[redo] = np.linalg.inv((l2 * eye + curv[redo, :, None] * k).astype(np.float32))
            stale[redo] = False
        q = np.matmul(inverse, np.stack([v, curv], axis=2).astype(np.float32)).astype(np.float64)  # (l2·I + D·K)⁻¹
        # for the gradient and the bias
        kq = np.matmul(k, q)
        schur = curv.sum(axis=1) - (curv * kq[:, :, 1]).sum(axis=1)
        g_sum = g.sum(axis=1)
        step_b = np.where(schur > 1e-300, ((curv * kq[:, :, 0]).sum(axis=1) - g_sum) / np.maximum(schur, 1e-300), 0)
        step_a = -(q[:, :, 0] + step_b[:, None] * q[:, :, 1])
        k_step = -(kq[:, :, 0] + step_b[:, None] * kq[:, :, 1])
        decrement = -((v * k_step).sum(axis=1) + g_sum * step_b)
        going &= decrement > 2 * DECREMENT  # converged (or no descent left that float64 can see)
        if not going.any():
            break
        du = k_step + step_b[:, None]
        a_ka, a_ks, s_ks = (alpha * ka).sum(axis=1), (alpha * k_step).sum(axis=1), (step_a * k_step).sum(axis=1)
        t = going.astype(np.float64)
        while True:
            new_loss = losses(u + t[:, None] * du, a_ka + 2 * t * a_ks + t * t * s_ks)
            short = going & (new_loss > loss - 1e-4 * t * decrement) & (t >= 1e-10)
            if not short.any():
                break
            t[short] *= 0.5
        worse = going & (new_loss > loss)  # no step lowers its loss: as low as float64 can tell
        going &= ~worse
        t[worse] = 0.0
        stale |= going & ((decrement > slow * before) | (t < 0.25))  # slow: its next step gets a new Hessian
        before = np.where(going, decrement, before)
        alpha = alpha + t[:, None] * step_a
        ka = ka + t[:, None] * k_step
        b = b + t * step_b
        u = ka + b[:, None] + o
        loss = np.where(t > 0, new_loss, loss)
    return alpha, b


def _lbfgs(f, theta: np.ndarray, max_steps: int, tolerance: float, memory: int = 10) -> np.ndarray:
    """Minimise a smooth convex ``f`` (θ → loss, gradient) by L-BFGS with a backtracking (Armijo) line search."""
    loss, grad = f(theta)
    steps_s: list[np.ndarray] = []
    steps_y: list[np.ndarray] = []
    for _ in range(max_steps):
        if np.abs(grad).max() < tolerance:
            break
        q = grad.copy()
        alphas = []
        for s, y in zip(reversed(steps_s), reversed(steps_y), strict=True):
            a = (s @ q) / (y @ s)
            alphas.append(a)
            q -= a * y
        if steps_s:
            q *= (steps_s[-1] @ steps_y[-1]) / (steps_y[-1] @ steps_y[-1])
        for (s, y), a in zip(zip(steps_s, steps_y, strict=True), reversed(alphas), strict=True):
            q += s * (a - (y @ q) / (y @ s))
        direction = -q
        slope = grad @ direction
        if slope >= 0:  # not a descent direction (numerical trouble): start again from the gradient
            steps_s.clear()
            steps_y.clear()
            direction, slope = -grad, -(grad @ grad)
        step = 1.0
        while True:
            new_theta = theta + step * direction
            new_loss, new_grad = f(new_theta)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        if new_loss > loss + 1e-4 * step * slope:  # no step lowers the loss: as low as float32 can tell
            break
        s, y = new_theta - theta, new_grad - grad
        if y @ s > 1e-12:
            steps_s.append(s)
            steps_y.append(y)
            if len(steps_s) > memory:
                steps_s.pop(0)
                steps_y.pop(0)
        theta, loss, grad = new_theta, new_loss, new_grad
    return theta
