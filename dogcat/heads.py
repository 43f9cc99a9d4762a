"""A split model's head (features → probabilities: one dense layer and a softmax) as numbers: read from its ONNX
graph, given new columns fitted on features, written back as a small ONNX graph.

Why a head of its own: a shelter's model (``dogcat teach``) is the shipped model's head with a column per breed
word of the shelter's, on the same backbone, so teaching never runs the backbone again (the catalog keeps every
photo's features) and the taught model is a file of ~1 MB beside the 22 MB backbone it shares.

The fit (:func:`fit_columns`) changes only the columns it is given, the others frozen: what the shipped model
knows stays as it was, and a new column has to win its photos against the columns that were there. It is a
multinomial logistic regression in those columns (softmax over all columns, cross-entropy, an L2 penalty that
pulls each column towards where it started). The problem is convex and small (a few columns × 2,048 features):
L-BFGS in a few lines of numpy solves it, so teaching needs no solver library.

Needs numpy, and onnx to read or write a graph (imported inside the functions that do).

Layer: pixels and models (docs/architecture.md).
"""

from __future__ import annotations

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


def write(head: Head, path: str | Path, input_name: str, output_name: str) -> Path:
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
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(made.SerializeToString())
    tmp.replace(path)  # never half a file under the model's name
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
