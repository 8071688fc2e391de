"""Several ONNX files of one model keep their weights in one external-data file, each distinct tensor stored once.

The predictor's one-step graph and the planner's rollout graph are made of the same weights; stored inside each
file they would count twice against the model folder's size. ONNX's external data (a tensor's bytes at an offset in
another file, resolved by ONNX Runtime and `onnx.load` relative to the model file) lets both point at one copy.
The exporter does not store a weight the same way in every graph (it folds a transpose into the weight in one,
keeps a Transpose node in another), so each graph first gets ONNX Runtime's basic, exact rewrites (constant
folding), which store each weight as the products use it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

ALIGNMENT = 64  # bytes; each tensor starts at a multiple, so that it can be mapped and read aligned
SMALLEST = 1024  # bytes; smaller tensors stay inside their graph (not worth an indirection)


def share_weights(graphs: list[Path], data_file: Path) -> dict[str, int]:
    """Move the initialisers of `graphs` (ONNX files in data_file's folder) into data_file, identical tensors once;
    rewrite the graphs to point at it. Returns the bytes written and the bytes the graphs held."""
    import onnx
    from onnx.external_data_helper import set_external_data

    for path in graphs:
        fold_constants(path)
    protos = [onnx.load(str(path)) for path in graphs]
    stored: dict[str, int] = {}  # sha256 of a tensor's bytes -> its offset in data_file
    held = 0
    partial = data_file.with_name(data_file.name + ".partial")
    with open(partial, "wb") as out:
        for proto in protos:
            for tensor in proto.graph.initializer:
                if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.raw_data) < SMALLEST:
                    continue
                data = tensor.raw_data
                held += len(data)
                key = hashlib.sha256(data).hexdigest()
                if key not in stored:
                    out.write(b"\0" * (-out.tell() % ALIGNMENT))
                    stored[key] = out.tell()
                    out.write(data)
                set_external_data(tensor, location=data_file.name, offset=stored[key], length=len(data))
                tensor.data_location = onnx.TensorProto.EXTERNAL
                tensor.ClearField("raw_data")
        written = out.tell()
    partial.replace(data_file)
    for proto, path in zip(protos, graphs):
        onnx.save(proto, str(path))
    return {"bytes_written": written, "bytes_held_by_graphs": held}


def fold_constants(path: Path) -> None:
    """Rewrite an ONNX file in place with ONNX Runtime's basic graph optimisations (constant folding and other
    rewrites that keep the numbers), keeping its metadata."""
    import onnx
    import onnxruntime as ort

    folded = path.with_name(path.name + ".folded")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    proto = onnx.load(str(folded))
    folded.unlink()
    original = onnx.load(str(path), load_external_data=False)
    del proto.metadata_props[:]
    proto.metadata_props.extend(original.metadata_props)
    onnx.save(proto, str(path))
