"""One exported graph (pixels → probabilities) → a backbone graph (pixels → pooled features, one view) and a
head graph (features → probabilities), by ONNX graph surgery.

Why: an export with ``mirror_mean`` runs every photo twice through the backbone (the photo and its mirror image
as one batch, then the mean of the two pooled vectors). Split, inference can take the second look only where
the first is unsure (dogcat.model.BreedModel, ``looks``), and a new head is a ~1 MB file beside a backbone that
never changes (the backbone is large and frozen: git keeps one copy of it).

The cut is exact: the mirror, the concatenation and the mean are removed, every node between the pixels and
the pooled features is kept as it was (an int8 graph's quantize/dequantize pairs included: their scales are
constants, so a photo's features do not depend on what else is in its batch), and the head is the graph from
the mean's output on (in fp32 in every export dogcat makes). ``check`` runs both on real photos against the
original graph.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dogcat.modelcard import ModelCard, sidecar_path, split_model_id

FEATURES = "features"  # the backbone's output and the head's input


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def feature_tensors(graph) -> tuple[str, str | None]:
    """(the head's input, the pooled features of each view) in an exported graph: the head's input is what its
    first Dense layer (MatMul/Gemm) multiplies; with a mirror mean that is ReduceMean(Reshape(pooled)), and the
    pooled features of the batch [photos; mirrors] are the Reshape's input. None when there is no mirror mean."""
    head_input = next(n.input[0] for n in graph.node if n.op_type in ("MatMul", "Gemm"))
    producer = {o: n for n in graph.node for o in n.output}
    mean = producer.get(head_input)
    if mean is None or mean.op_type != "ReduceMean":
        return head_input, None
    reshape = producer[mean.input[0]]
    if reshape.op_type != "Reshape":
        raise ValueError(f"the mean before the head averages {reshape.op_type}, not the two views' features")
    return head_input, reshape.input[0]


def _extract(proto, inputs: list[str], outputs: list[str], rename: dict[str, str]):
    """The subgraph from ``inputs`` to ``outputs`` (onnx.utils.Extractor), tensors renamed by ``rename``."""
    import onnx
    from onnx.utils import Extractor

    # Extractor looks every cut tensor up among the graph's value infos, which tf2onnx's fp32 export leaves
    # out for the pooled features (the int8 graph has them from quantization's shape inference): infer them.
    extractor = Extractor(onnx.shape_inference.infer_shapes(proto))
    for name in inputs + outputs:
        if name not in extractor.value_infos:
            extractor.value_infos[name] = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
    sub = extractor.extract_model(inputs, outputs)
    for node in sub.graph.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    for value in list(sub.graph.input) + list(sub.graph.output):
        value.name = rename.get(value.name, value.name)
    keep = [o for o in proto.opset_import if o.domain in ("", "ai.onnx", "com.microsoft")]
    del sub.opset_import[:]
    sub.opset_import.extend(keep)
    sub.ir_version = proto.ir_version
    onnx.checker.check_model(sub)
    return sub


def split(model_path: str | Path, backbone_out: str | Path, head_out: str | Path,
          pixels: str = "pixels", probabilities: str = "probabilities") -> dict:
    """Write the backbone and the head of ``model_path``; returns what the head's card records about them."""
    import onnx

    proto = onnx.load(str(model_path))
    graph = proto.graph
    head_input, pooled = feature_tensors(graph)
    if pooled is not None:
        # The mirror: Concat([pixels, flip(pixels)]) feeding the backbone's first layer. Feed it the pixels.
        concat = next(n for n in graph.node if n.op_type == "Concat" and pixels in n.input)
        for node in _consumers(graph).get(concat.output[0], []):
            node.input[:] = [pixels if x == concat.output[0] else x for x in node.input]
    backbone = _extract(proto, [pixels], [pooled or head_input], {(pooled or head_input): FEATURES})
    head = _extract(proto, [head_input], [probabilities], {head_input: FEATURES})
    backbone_out, head_out = Path(backbone_out), Path(head_out)
    onnx.save(backbone, str(backbone_out))
    onnx.save(head, str(head_out))
    return {"file": backbone_out.name, "sha256": hashlib.sha256(backbone_out.read_bytes()).hexdigest(),
            "input": pixels, "output": FEATURES,
            "features": _width(head.graph.input[0])}


def _width(value) -> int | None:
    """The last dimension of a tensor's declared shape (the features' length), None when not declared."""
    dims = value.type.tensor_type.shape.dim
    return int(dims[-1].dim_value) or None if dims else None


def check(model_path: str | Path, backbone_path: str | Path, head_path: str | Path, pixels: np.ndarray) -> dict:
    """The original graph against head(mean(backbone(photo), backbone(mirror))) on ``pixels`` (NHWC, 0..255):
    the largest difference in probability and how many photos get another top breed."""
    import onnxruntime as ort

    def session(path):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    whole, backbone, head = session(model_path), session(backbone_path), session(head_path)
    want, got = [], []
    for i in range(0, len(pixels), 4):
        chunk = pixels[i:i + 4]
        want.append(whole.run(None, {"pixels": chunk})[0])
        views = [backbone.run(None, {"pixels": np.ascontiguousarray(v)})[0] for v in (chunk, chunk[:, :, ::-1])]
        got.append(head.run(None, {FEATURES: (views[0] + views[1]) / 2})[0])
    a, b = np.concatenate(want), np.concatenate(got)
    return {"photos": len(a), "max_abs_diff": float(np.abs(a - b).max()),
            "top1_disagree": int((a.argmax(1) != b.argmax(1)).sum())}


def split_model(model_path: str | Path, out_dir: str | Path, backbone_name: str, head_name: str,
                check_pixels: np.ndarray | None = None, say=print) -> Path:
    """Split an exported model (its .onnx and card) into ``out_dir``: the backbone as ``backbone_name``, the head
    as ``head_name`` with the model's card (its labels, preprocessing, metrics and decision kept; a
    ``backbone`` block added; a new id, of both graphs) and split file. With ``check_pixels``, both are checked
    against the original graph first (``check``) and nothing is kept if any photo's top breed differs or a
    probability differs by more than 1e-5. Returns the head's path."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    card = ModelCard.read(model_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        backbone_tmp, head_tmp = Path(tmp) / backbone_name, Path(tmp) / head_name
        block = split(model_path, backbone_tmp, head_tmp, card.input, card.output)
        parity = None
        if check_pixels is not None:
            parity = check(model_path, backbone_tmp, head_tmp, check_pixels)
            say(f"split checked against {model_path.name} on {parity['photos']} photos: max |diff| "
                f"{parity['max_abs_diff']:.1e}, {parity['top1_disagree']} other top breeds")
            if parity["top1_disagree"] or parity["max_abs_diff"] > 1e-5:
                raise ValueError(f"{model_path}: the split graphs do not reproduce it ({parity})")
        head_sha = hashlib.sha256(head_tmp.read_bytes()).hexdigest()
        name = card.name or model_path.stem
        new = card.updated(id=split_model_id(name, block["sha256"], head_sha), sha256=head_sha, backbone=block,
                           split_from={"model": card.id, **({"parity": parity} if parity else {})})
        backbone_tmp.replace(out_dir / backbone_name)
        head_tmp.replace(out_dir / head_name)
    new.write(out_dir / head_name)
    split_file, new_split_file = model_path.with_suffix(".split.json"), (out_dir / head_name).with_suffix(".split.json")
    if split_file.is_file() and split_file.resolve() != new_split_file.resolve():
        shutil.copy(split_file, new_split_file)
    say(f"wrote {out_dir / backbone_name} ({(out_dir / backbone_name).stat().st_size / 1e6:.1f} MB), "
        f"{out_dir / head_name} ({(out_dir / head_name).stat().st_size / 1e6:.1f} MB) and "
        f"{sidecar_path(out_dir / head_name).name}: {new.id}")
    return out_dir / head_name
