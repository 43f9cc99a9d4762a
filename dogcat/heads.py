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
negatives, so that a thousand words cost a thousand times one. The problems are convex and small: L-BFGS in a
few lines of numpy solves them, so teaching needs no solver library.

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
ROUNDS = 3  # fits of the rows, at most, until no negative outside them is taken


@dataclass
class NewColumns:
    """New columns fitted one by one against a frozen head (:func:`fit_new_columns`): each one's weights and
    bias, and the photos it was fitted on (its rows)."""

    weights: np.ndarray  # (n_features, n_new)
    bias: np.ndarray  # (n_new,)
    rows: list[np.ndarray]  # per column: its rows (indices into the features it was fitted on), positives first


def fit_new_columns(base: Head, features: np.ndarray, targets: np.ndarray, weights: np.ndarray, l2: float,
                    rows: list[np.ndarray] | None = None, steps: int = 200, n_new: int | None = None,
                    progress=None, folds: list[np.ndarray] | None = None):
    """New columns after ``base``'s (which stay frozen), one per column index ``targets`` names beyond
    ``base.classes``, each fitted on its own.

    Column c minimises, over every photo i with a target (weights ``weights``, normalised to sum to 1), the
    weighted cross-entropy of "c or not c" under the softmax of base's columns and c, plus ``l2``/2 × |w_c|^2.
    Alone among new columns that is exactly :func:`fit_columns`'s problem; with several, each column is fitted
    against the frozen ones and against the other new columns' photos (as "not c"), not jointly with the others
    — which is what makes the cost linear in the number of columns. The problem is convex; solved by L-BFGS on a
    column's rows (its photos and its hardest negatives: those most like its photos, then any negative the
    fitted column would give more than TAKES probability, until none is left out), so a step costs a few
    hundred photos, not the catalog: a negative left out is one the column gives almost nothing. ``rows``: the
    rows of a fit before (out-of-fold fits reuse the full fit's, checked there). ``progress(done, total)``:
    columns fitted. ``folds``: masks of photos held out; then a list, the columns fitted without each."""
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
    bias = np.zeros(n_new)
    todo = list(range(n_new))
    out_w = np.zeros((d, n_new), np.float32)
    if folds is not None:  # each fold's columns, fitted without its photos, on the rows given
        fits = [(np.zeros((d, n_new), np.float32), np.zeros(n_new)) for _ in folds]
        kept = [np.where(held, 0.0, sample) for held in folds]
        _fit_rows(x, offset, [k / max(float(k.sum()), 1e-30) for k in kept], targets, base.classes, rows,
                  [b for _, b in fits], todo, l2, [w for w, _ in fits], steps, progress)
        return [NewColumns(w, b.astype(np.float32), rows) for w, b in fits]
    for round_ in range(1 if fixed_rows else ROUNDS):
        _fit_rows(x, offset, [sample], targets, base.classes, rows, [bias], todo, l2, [out_w], steps,
                  progress if round_ == 0 else None)
        if fixed_rows or round_ == ROUNDS - 1:
            break
        # Any negative outside a column's rows that it would take joins them, and the column is fitted again.
        u = x[used] @ out_w[:, todo] + bias[todo] + offset[used, None]
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
    return NewColumns(out_w, bias.astype(np.float32), rows)


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


def _fit_rows(x, offset, samples, targets, first_new, rows, biases, todo, l2, out_ws, steps, progress) -> None:
    """L-BFGS for the columns ``todo``, once per sample weighting in ``samples`` (the full fit's, or each fold's:
    the results go to the same place in ``biases`` and ``out_ws``), in chunks of columns with rows of similar
    count: each chunk's columns are one problem (a sum of theirs, independent of each other).

    A column's loss sees its weights only through its rows' features, and its penalty is |w|^2, so the best
    weights lie in the span of those rows: the problem is solved in the coordinates of that span given by the
    Cholesky factor of the rows' Gram matrix (X_r = L·Q, Q orthonormal), a few hundred numbers a column instead
    of 2,048, a step costing rows², not rows × features; the factor is made once a chunk for every fit."""
    order = sorted(todo, key=lambda c: len(rows[c]))
    d = x.shape[1]
    done = 0
    while order:
        m = max(len(rows[order[0]]), 1)
        most = max(1, 20_000_000 // (int(m * 1.25) * d))  # the chunk's features: at most ~80 MB
        chunk = [c for c in order if len(rows[c]) <= m * 1.25][:most]
        order = order[len(chunk):]
        size = max(len(rows[c]) for c in chunk)
        idx = np.zeros((len(chunk), size), int)
        live = np.zeros((len(chunk), size), bool)
        for k, c in enumerate(chunk):
            idx[k, :len(rows[c])] = rows[c]
            live[k, :len(rows[c])] = True
        xr = x[idx] * live[..., None]
        gram = np.matmul(xr, xr.transpose(0, 2, 1)).astype(np.float64)
        jitter = 1e-7 * np.maximum(np.einsum("cii->c", gram) / size, 1e-12)
        coords = np.linalg.cholesky(gram + jitter[:, None, None] * np.eye(size))  # rows in the span's basis
        unfactor = np.linalg.inv(coords)  # L⁻¹: weights ↔ coordinates
        y = ((targets[idx] == first_new + np.asarray(chunk)[:, None]) & live).astype(np.float64)
        o = np.where(live, offset[idx], 0.0)
        for sample, bias, out_w in zip(samples, biases, out_ws, strict=True):
            s = np.where(live, sample[idx], 0.0)
            b0 = bias[chunk].astype(np.float64)
            w0 = out_w[:, chunk].T
            start = np.zeros((len(chunk), size))
            if w0.any():  # fitted before, on fewer rows
                start = np.einsum("cij,cj->ci", unfactor, np.einsum("cmd,cd->cm", xr, w0).astype(np.float64))
            for j in np.flatnonzero(~w0.any(axis=1)):  # a fresh column starts where its photos are at even odds
                mine = (y[j] > 0) & (s[j] > 0)
                b0[j] = -float(np.median(o[j][mine])) if mine.any() else 0.0
            theta = _lbfgs(_chunk_loss(coords, y, s, o, l2), np.concatenate([start.ravel(), b0]), steps, 1e-6)
            beta, b = theta[:-len(chunk)].reshape(len(chunk), size), theta[-len(chunk):]
            along = np.einsum("cji,cj->ci", unfactor, beta).astype(np.float32)  # L⁻ᵀβ
            out_w[:, chunk] = np.einsum("cmd,cm->dc", xr, along)
            bias[chunk] = b
        done += len(chunk)
        if progress:
            progress(done, len(todo))


def _chunk_loss(coords: np.ndarray, y: np.ndarray, s: np.ndarray, o: np.ndarray, l2: float):
    """θ → (loss, gradient) of a chunk's columns, each "its photos or not" on its own rows, given as
    ``coords`` (columns × rows × basis), with targets ``y``, sample weights ``s`` and offsets ``o`` (-log of the
    frozen columns' softmax sum) per row; θ: the columns' coordinates, then their biases."""
    n_cols, _, k = coords.shape

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        beta = theta[:-n_cols].reshape(n_cols, k)
        b = theta[-n_cols:]
        u = np.minimum(np.matmul(coords, beta[:, :, None])[:, :, 0] + b[:, None] + o, 80.0)
        p = 0.5 * (1.0 + np.tanh(0.5 * u))  # the sigmoid, without overflow
        loss = float((s * (np.logaddexp(0.0, u) - y * u)).sum()) + 0.5 * l2 * float((beta ** 2).sum())
        g = s * (p - y)
        grad = np.matmul(g[:, None, :], coords)[:, 0, :] + l2 * beta
        return loss, np.concatenate([grad.ravel(), g.sum(axis=1)])

    return loss_and_gradient


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
