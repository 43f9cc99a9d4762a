"""The int8 backbone computed without ONNX Runtime's kernels: the reference every CPU is checked against (issue 32).

ONNX Runtime first rewrites the graph (level 2 of its optimizations, the same on every x86-64 CPU: each
quantize → convolution → dequantize becomes one QLinearConv, some additions QLinearAdd), then runs each node with
kernels chosen for the CPU (AVX2, AVX-512 VNNI, AMX). This module takes that rewritten graph and evaluates it in
numpy with the arithmetic those kernels specify, so the answer depends on the graph alone:

- integer convolutions exactly (the products' sums, integers below 2**53, in float64);
- requantization as ONNX Runtime's: float32(sum) × float32(x_scale × w_scale / y_scale), clamped, rounded half
  to even; QuantizeLinear as x / scale in float32;
- QLinearAdd in the fixed point of ONNX Runtime's x86 kernel (22 bits for the larger of the two scale ratios);
- the two fp32 convolutions on raw pixels as chains of fused multiply-adds, in blocks of 128 terms, as ONNX
  Runtime's fp32 GEMM sums them (without its NCHWc layout, which dogcat.model turns off);
- the last pooling in float64: the one step left that can differ, by one float32 step (6e-8).

Why this much care: the int8 graph amplifies a difference in the last bit anywhere before the pooling into
features some 14 % apart (docs/model.md), so a reference that is merely close is no reference. Checked node by
node against ONNX Runtime 1.32 on an AMX CPU, for a backbone quantized with 7-bit weights and run without the
NCHWc layout (what issue 32 ships next; docs/model.md): every tensor the same to the last bit up to the
pooling, and the features within 2e-7. About 13-20 s a 299-pixel photo on 2 cores; tests/test_train.py checks
it on the lab's small model in the slow tier.

Layer: the lab (docs/architecture.md); needs onnx and onnxruntime (to rewrite the graph), not TensorFlow.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

FP32_K_BLOCK = 128  # the fp32 GEMM's block of the summed dimension: each block a chain of FMAs from zero


def features(backbone: str | Path, pixels: np.ndarray) -> np.ndarray:
    """The backbone's pooled features of ``pixels`` (NHWC float32, as dogcat.images makes them)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        rewritten = Path(tmp) / "level2.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(rewritten)
        ort.InferenceSession(str(backbone), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(rewritten)).graph
    return evaluate(graph, pixels)[0]


def evaluate(graph, pixels: np.ndarray, wanted: list[str] | None = None) -> list[np.ndarray]:
    """Every node of ``graph`` (a rewritten one: see the module's doc) in order; the graph's outputs, or the
    tensors named in ``wanted``."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    values[graph.input[0].name] = pixels
    for node in graph.node:
        args = [values[k] if k else None for k in node.input]
        values[node.output[0]] = _OPS[node.op_type](node, *args)
    return [values[k] for k in (wanted or [o.name for o in graph.output])]


def _attr(node, name: str, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            if a.type == onnx.AttributeProto.INTS:
                return list(a.ints)
            return a.s.decode() if a.type == onnx.AttributeProto.STRING else a.i
    return default


def _windows(x: np.ndarray, kh: int, kw: int, strides, pads, dilations=(1, 1), fill=0):
    """NCHW ``x`` padded: for each kernel offset (i, j), the input values under it at every output position."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=fill)
    ho = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (w + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    return [[padded[:, :, i * dilations[0]:i * dilations[0] + strides[0] * ho:strides[0],
                    j * dilations[1]:j * dilations[1] + strides[1] * wo:strides[1]] for j in range(kw)]
            for i in range(kh)], ho, wo


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add: a × b is exact in the 64-bit mantissa of x86's long double, one rounding."""
    wide = np.longdouble
    return (a.astype(wide) * b.astype(wide) + c.astype(wide)).astype(np.float32)


def _conv_fp32(node, x, w, bias=None):
    assert _attr(node, "group", 1) == 1
    kh, kw = w.shape[2:]
    win, ho, wo = _windows(x, kh, kw, _attr(node, "strides", [1, 1]), _attr(node, "pads", [0, 0, 0, 0]))
    n, c = x.shape[:2]
    # im2col's order (channel, row, column), the order the GEMM sums in
    cols = np.stack([win[i][j][:, ch] for ch in range(c) for i in range(kh) for j in range(kw)], axis=1)
    cols = cols.reshape(n, c * kh * kw, ho * wo)
    weights = w.reshape(w.shape[0], -1)
    out = []
    for photo in cols:
        total = np.zeros((weights.shape[0], ho * wo), np.float32)
        for start in range(0, weights.shape[1], FP32_K_BLOCK):
            acc = np.zeros((weights.shape[0], ho * wo), np.float32)
            for k in range(start, min(start + FP32_K_BLOCK, weights.shape[1])):
                acc = _fma(weights[:, k:k + 1], photo[k:k + 1], acc)
            total = acc if start == 0 else total + acc
        if bias is not None:
            total = total + bias.reshape(-1, 1)
        out.append(total.reshape(-1, ho, wo))
    y = np.stack(out)
    if node.op_type == "FusedConv":
        assert _attr(node, "activation") == "Relu"
        y = np.maximum(y, np.float32(0))
    return y


def _qlinearconv(node, x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero, bias=None):
    group, (kh, kw) = _attr(node, "group", 1), w.shape[2:]
    xs = x.astype(np.float64) - float(x_zero)
    ws = w.astype(np.float64) - (np.asarray(w_zero, np.float64).reshape(-1, 1, 1, 1) if np.ndim(w_zero)
                                 else float(w_zero))
    win, ho, wo = _windows(xs, kh, kw, _attr(node, "strides", [1, 1]), _attr(node, "pads", [0, 0, 0, 0]),
                           _attr(node, "dilations", [1, 1]))
    if group == 1:
        acc = sum(np.einsum("mc,nchw->nmhw", ws[:, :, i, j], win[i][j]) for i in range(kh) for j in range(kw))
    else:  # depthwise: a group per channel
        assert group == x.shape[1] == w.shape[0]
        acc = sum(win[i][j] * ws[None, :, 0, i, j, None, None] for i in range(kh) for j in range(kw))
    acc = np.rint(acc).astype(np.int64)
    if bias is not None:
        acc = acc + bias.astype(np.int64).reshape(1, -1, 1, 1)
    scale = (np.float32(x_scale) * np.asarray(w_scale, np.float32)) / np.float32(y_scale)
    y = acc.astype(np.int32).astype(np.float32) * scale.reshape(1, -1, 1, 1)
    return _to_uint8(y, y_zero)


def _to_uint8(y: np.ndarray, zero) -> np.ndarray:
    y = np.clip(y, np.float32(0 - int(zero)), np.float32(255 - int(zero)))
    return (np.rint(y) + int(zero)).astype(np.uint8)  # rint: half to even, as the CPU's conversion


def _quantize(node, x, scale, zero):
    return _to_uint8(x.astype(np.float32) / np.float32(scale), zero)


def _dequantize(node, x, scale, zero):
    return (x.astype(np.int32) - int(zero)).astype(np.float32) * np.float32(scale)


def _qlinearadd(node, a, a_scale, a_zero, b, b_scale, b_zero, c_scale, c_zero):
    ratio_a, ratio_b = np.float32(a_scale) / np.float32(c_scale), np.float32(b_scale) / np.float32(c_scale)
    exponent = int(np.array(max(ratio_a, ratio_b), np.float32).view(np.uint32) >> 23) - 127
    shift = 21 - exponent
    mult_a = int(np.rint(np.float32(ratio_a * np.float32(2.0 ** shift))))
    mult_b = int(np.rint(np.float32(ratio_b * np.float32(2.0 ** shift))))
    acc = a.astype(np.int64) * mult_a + b.astype(np.int64) * mult_b - (mult_a * int(a_zero) + mult_b * int(b_zero))
    acc = (acc + 2 ** 31) % 2 ** 32 - 2 ** 31  # int32, as the kernel's
    mask = (1 << shift) - 1
    remainder = (acc & mask) + np.where(acc < 0, -1, 0)
    out = (acc >> shift) + (remainder > (mask >> 1))  # rounded half away from zero
    return np.clip(np.clip(out, -32768, 32767) + int(c_zero), 0, 255).astype(np.uint8)


def _maxpool(node, x):
    kh, kw = _attr(node, "kernel_shape")
    win, _, _ = _windows(x, kh, kw, _attr(node, "strides", [1, 1]), _attr(node, "pads", [0, 0, 0, 0]),
                         fill=0 if x.dtype == np.uint8 else -np.inf)
    return np.maximum.reduce([win[i][j] for i in range(kh) for j in range(kw)])


_OPS: dict[str, Callable[..., np.ndarray]] = {
    "Mul": lambda n, a, b: (a * b).astype(np.float32),
    "Add": lambda n, a, b: (a + b).astype(np.float32),
    "Relu": lambda n, a: np.maximum(a, np.float32(0)),
    "Transpose": lambda n, a: np.transpose(a, _attr(n, "perm")),
    "FusedConv": _conv_fp32,
    "Conv": _conv_fp32,
    "QuantizeLinear": _quantize,
    "DequantizeLinear": _dequantize,
    "QLinearConv": _qlinearconv,
    "QLinearAdd": _qlinearadd,
    "MaxPool": _maxpool,
    "GlobalAveragePool": lambda n, a: a.astype(np.float64).mean(axis=(2, 3), keepdims=True).astype(np.float32),
    "Squeeze": lambda n, a, axes=None: np.squeeze(a, axis=None if axes is None else tuple(int(i) for i in axes)),
}
