"""dogcat train split's graph surgery on a small graph shaped like an export with a mirror mean (pixels →
[pixels; mirrored pixels] → "backbone" → Reshape → ReduceMean → Gemm → Softmax): the backbone and head it cuts
out answer as the whole graph did. Needs onnx (the train extra), not TensorFlow."""

from __future__ import annotations

import numpy as np
from conftest import needs_module


def mirror_mean_graph(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Slice", ["pixels", "start", "end", "axis", "step"], ["mirrored"]),  # flip the width
        helper.make_node("Concat", ["pixels", "mirrored"], ["both"], axis=0),
        helper.make_node("Mul", ["both", "mask"], ["scaled"]),  # weights by position: a mirror image pools apart
        helper.make_node("ReduceMean", ["scaled"], ["pooled"], axes=[1, 2], keepdims=0),  # (2N, 3): the "backbone"
        helper.make_node("Reshape", ["pooled", "views"], ["by_view"]),
        helper.make_node("ReduceMean", ["by_view"], ["mean"], axes=[0], keepdims=0),
        helper.make_node("Gemm", ["mean", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"]),
    ]
    constants = {"start": [-1], "end": [-(2 ** 62)], "axis": [2], "step": [-1], "views": [2, -1, 3]}
    init = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in constants.items()]
    init += [numpy_helper.from_array(rng.uniform(0, 0.02, (1, 4, 4, 3)).astype(np.float32), "mask"),
             numpy_helper.from_array(rng.normal(size=(3, 5)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=5).astype(np.float32), "b")]
    graph = helper.make_graph(nodes, "mirror_mean", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                                                   ["n", 4, 4, 3])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 5])], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_split_reproduces_the_whole_graph(tmp_path):
    needs_module("onnx")
    from dogcat.train import graph_split

    mirror_mean_graph(tmp_path / "whole.onnx")
    block = graph_split.split(tmp_path / "whole.onnx", tmp_path / "backbone.onnx", tmp_path / "head.onnx")
    assert block["input"] == "pixels" and block["output"] == graph_split.FEATURES
    pixels = np.random.default_rng(1).uniform(0, 255, (6, 4, 4, 3)).astype(np.float32)
    checked = graph_split.check(tmp_path / "whole.onnx", tmp_path / "backbone.onnx", tmp_path / "head.onnx", pixels)
    assert checked["photos"] == 6 and checked["top1_disagree"] == 0 and checked["max_abs_diff"] < 1e-6
    # ... and the mirror matters in this graph: the photo's features alone answer otherwise.
    import onnxruntime as ort

    backbone = ort.InferenceSession(str(tmp_path / "backbone.onnx"), providers=["CPUExecutionProvider"])
    whole = ort.InferenceSession(str(tmp_path / "whole.onnx"), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(tmp_path / "head.onnx"), providers=["CPUExecutionProvider"])
    one_look = head.run(None, {graph_split.FEATURES: backbone.run(None, {"pixels": pixels})[0]})[0]
    assert np.abs(one_look - whole.run(None, {"pixels": pixels})[0]).max() > 1e-3
