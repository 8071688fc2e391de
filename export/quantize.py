"""Reduced-precision copies of a model folder's ONNX files, and how closely they agree with fp32.

- int8: onnxruntime.quantization.quantize_dynamic of the fp32 files (int8 weights of MatMul/Gemm, activations
  quantised on the fly) -> encoder.int8.onnx, predictor.int8.onnx. For the CPU. Where a fully quantised graph falls
  short of the agreement target, its most sensitive weight products are kept in fp32, one at a time, until it
  holds (see keep_sensitive_in_fp32).
- fp16: onnxconverter-common's float16 conversion with float32 inputs/outputs kept -> encoder.fp16.onnx,
  predictor.fp16.onnx. For the GPU; needs onnxconverter-common (in the `train` extra).
Both are made from the fp32 files (run `lewm export --model DIR` first). Needs the `onnx` package, not torch.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from export.files import ENCODER_INPUTS, PREDICTOR_INPUTS, onnx_files, quiet_logger, sha256_file
from lewm.config import ModelConfig
from lewm_errors import UserError

AGREEMENT_TARGET = 0.999
# int8: which weight products stay fp32 is chosen on other inputs than the recorded agreement, and on more frames,
# since the low tail is what misses the target
SELECTION_SEED, SELECTION_FRAMES = 1, 64
MAX_KEPT_FP32 = 4  # per graph: past this the file is hardly int8 any more, and the shortfall is reported instead


def quantize_model_folder(folder: str | Path, target: float = AGREEMENT_TARGET,
                          selection_cache: str | Path | None = None) -> dict[str, Any]:
    """Write FOLDER/encoder.int8.onnx and FOLDER/predictor.int8.onnx; record them, the nodes kept in fp32 and their
    agreement with fp32 in config.json's "onnx" section (returned).

    selection_cache: a folder where the choice of nodes kept in fp32 is stored under selection_key() and read
    back on the next call for the same weights, instead of scanning every weight product again (minutes on the
    paper-sized graphs)."""
    folder = Path(folder)
    sources, targets = _sources(folder), onnx_files(folder, "int8")
    cache_file = None
    if selection_cache is not None:
        cache_file = Path(selection_cache) / f"int8-{selection_key(folder, target)}.json"
    cached = _read_selection(cache_file)
    checks = {}
    kept = {}
    for graph, source, destination in zip(("encoder", "predictor"), sources, targets):
        known = cached.get(graph)
        if isinstance(known, list) and set(known) <= set(_weight_products(source)):
            _quantize(source, destination, known)
            kept[graph] = known
        else:
            checks = checks or _selection_checks(folder)
            kept[graph] = keep_sensitive_in_fp32(source, destination, checks[graph], target)
        _copy_metadata(source, destination)
    if cache_file is not None and kept != cached:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(kept) + "\n")
    kept.update(selected_on=f"{SELECTION_FRAMES} random frames of seed {SELECTION_SEED} (not the inputs of "
                            "agreement_with_fp32)", max_per_graph=MAX_KEPT_FP32)
    return _record(folder, "int8", targets, "onnxruntime.quantization.quantize_dynamic (QInt8 weights, per "
                   "channel, MatMul/Gemm), the most sensitive weight products kept in fp32 where needed",
                   target=target, kept_fp32=kept)


def selection_key(folder: Path, target: float) -> str:
    """What the int8 selection depends on: the weights (weights.safetensors, or the fp32 ONNX files of a folder
    without it), the agreement target, the selection inputs and the quantiser's version."""
    import onnxruntime

    weights = folder / "weights.safetensors"
    hashes = [sha256_file(weights)] if weights.is_file() else [sha256_file(p) for p in _sources(folder)]
    settings = [target, SELECTION_SEED, SELECTION_FRAMES, MAX_KEPT_FP32, onnxruntime.__version__]
    return hashlib.sha256(json.dumps([hashes, settings]).encode()).hexdigest()[:20]


def _read_selection(path: Path | None) -> dict:
    """A cached selection ({graph: [node names]}), or {} when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def keep_sensitive_in_fp32(source: Path, destination: Path, min_cosine: Callable[[Path], float],
                           target: float) -> list[str]:
    """Quantise `source` into `destination`, keeping in fp32 the fewest weight products (MatMul/Gemm nodes with a
    weight initialiser) that bring `min_cosine(destination)` (its lowest cosine to fp32) up to `target`: rank the
    nodes by the min cosine with that node alone kept, then keep them in that order. Returns the kept nodes' names.
    Fully quantised when that already meets the target; at most MAX_KEPT_FP32 kept."""
    _quantize(source, destination, [])
    if min_cosine(destination) >= target:
        return []
    lone = {}
    for node in tqdm(_weight_products(source), desc=f"int8: sensitivity of {source.name}", leave=False):
        _quantize(source, destination, [node])
        lone[node] = min_cosine(destination)
    kept = []
    for node in sorted(lone, key=lone.get, reverse=True)[:MAX_KEPT_FP32]:
        kept.append(node)
        _quantize(source, destination, kept)
        if min_cosine(destination) >= target:
            break
    return kept


def _quantize(source: Path, destination: Path, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_logger():  # it advises a shape-inference pre-pass on every call; the dynamo graphs have shapes
        # reduce_range: 7-bit weights. On x86 CPUs without VNNI (AVX2 only) ONNX Runtime's int8 products saturate
        # with 8-bit weights: a tiny random model agreed with fp32 at cos 0.966 there, and above 0.99 with this.
        quantize_dynamic(str(source), str(destination), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True, op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=exclude)


def _weight_products(path: Path) -> list[str]:
    """Names of the MatMul/Gemm nodes that multiply by a weight initialiser (the ones quantize_dynamic quantises;
    the attention products of two activations stay fp32 anyway)."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {init.name for init in graph.initializer}
    return [node.name for node in graph.node
            if node.op_type in ("MatMul", "Gemm") and any(name in weights for name in node.input)]


def _selection_checks(folder: Path) -> dict[str, Callable[[Path], float]]:
    """Per graph, a function of a candidate file -> its min cosine to the fp32 graph on the selection inputs."""
    import onnxruntime as ort

    def session(path):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    encoder, predictor = (session(p) for p in onnx_files(folder, "fp32"))
    config = ModelConfig.load(folder / "config.json")
    images, calls = agreement_inputs(config, lambda x: encoder.run(None, {ENCODER_INPUTS[0]: x})[0],
                                     SELECTION_FRAMES, SELECTION_SEED)
    feeds = {"encoder": [{ENCODER_INPUTS[0]: images}],
             "predictor": [dict(zip(PREDICTOR_INPUTS, call)) for call in calls]}
    references = {"encoder": encoder, "predictor": predictor}

    def check(graph):
        expected = [references[graph].run(None, feed)[0] for feed in feeds[graph]]

        def min_cosine(path):
            candidate = session(path)
            return float(min(_cosines(candidate.run(None, feed)[0], want).min()
                             for feed, want in zip(feeds[graph], expected)))
        return min_cosine
    return {graph: check(graph) for graph in references}


def fp16_available(raise_if_not: bool = False) -> bool:
    """Whether this machine can make fp16 files (onnxconverter-common installed)."""
    import importlib.util

    if importlib.util.find_spec("onnxconverter_common") is not None:
        return True
    if raise_if_not:
        raise UserError("fp16 files are not available on this machine: they need the onnxconverter-common package "
                        "(`pip install onnxconverter-common`), which is not installed. fp16 is for the GPU; "
                        "on the CPU use fp32 or --int8.")
    return False


def convert_fp16_model_folder(folder: str | Path) -> dict[str, Any]:
    """Write FOLDER/encoder.fp16.onnx and FOLDER/predictor.fp16.onnx (float32 inputs and outputs kept)."""
    fp16_available(raise_if_not=True)
    import onnx
    from onnxconverter_common import float16

    folder = Path(folder)
    sources, targets = _sources(folder), onnx_files(folder, "fp16")
    # Cast nodes stay fp32 (with casts around them): the converter retypes a Cast's output to fp16 but keeps its
    # `to` attribute, and ONNX Runtime then refuses the file (the encoder's uint8 -> float Cast of the frames).
    keep_fp32 = list(float16.DEFAULT_OP_BLOCK_LIST) + ["Cast"]
    for source, target in zip(sources, targets):
        with warnings.catch_warnings():  # it warns for each constant it clips to fp16 range (mask fills: -1e4)
            warnings.simplefilter("ignore", UserWarning)
            converted = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True,
                                                         op_block_list=keep_fp32)
        onnx.save(converted, str(target))
        _copy_metadata(source, target)
    return _record(folder, "fp16", targets, "onnxconverter_common.float16 (keep_io_types; Cast kept fp32)")


def precision_agreement(folder: str | Path, precision: str, frames: int = 16, seed: int = 0,
                        providers: list[str] | None = None) -> dict[str, float]:
    """Cosine similarity between the `precision` engine's and the fp32 engine's outputs on the same random inputs:
    latents of random uint8 frames, and predictions from windows of those latents with raw actions ~ N(mean, std)
    at every T = 1..history. Returns mean and min cosine, over both calls and per call."""
    from export.engine import OnnxEngine

    reference = OnnxEngine.from_folder(folder, providers=providers, precision="fp32")
    reduced = OnnxEngine.from_folder(folder, providers=providers, precision=precision)
    images, calls = agreement_inputs(reference.config, reference.encode, frames, seed)
    enc_cos = _cosines(reduced.encode(images), reference.encode(images))
    pred_cos = np.concatenate([_cosines(reduced.predict(*call), reference.predict(*call)) for call in calls])
    both = np.concatenate([enc_cos, pred_cos])
    return {"mean_cos": float(both.mean()), "min_cos": float(both.min()),
            "encode_mean_cos": float(enc_cos.mean()), "encode_min_cos": float(enc_cos.min()),
            "predict_mean_cos": float(pred_cos.mean()), "predict_min_cos": float(pred_cos.min()),
            "target": AGREEMENT_TARGET}


def agreement_inputs(config: ModelConfig, encode, frames: int = 16, seed: int = 0):
    """The inputs agreement is measured on: `frames` random uint8 frames, and predictor calls (windows of their
    latents under `encode`, raw actions ~ N(mean, std)) at every T = 1..history. Returns (images, [(z, actions)])."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (frames, config.image_size, config.image_size, 3), dtype=np.uint8)
    z = encode(images)
    mean = np.tile(np.asarray(config.action_mean, np.float32), config.frameskip)
    std = np.tile(np.asarray(config.action_std, np.float32), config.frameskip)
    calls = []
    for t in range(1, config.history + 1):
        starts = np.arange(frames - t + 1)
        windows = np.stack([z[s:s + t] for s in starts])
        actions = (mean + std * rng.standard_normal((len(starts), t, config.action_block_dim))).astype(np.float32)
        calls.append((windows, actions))
    return images, calls


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


def _sources(folder: Path) -> tuple[Path, Path]:
    sources = onnx_files(folder, "fp32")
    missing = [p.name for p in sources if not p.is_file()]
    if missing:
        raise UserError(f"model folder {folder} lacks {', '.join(missing)}: run `lewm export --model {folder}` first")
    return sources


def _copy_metadata(source: Path, target: Path) -> None:
    """Carry the config stamp (metadata_props) of the fp32 file over to its reduced copy."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    proto = onnx.load(str(target))
    have = {p.key for p in proto.metadata_props}
    for key, value in props.items():
        if key not in have:
            proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))


def _record(folder: Path, precision: str, targets: tuple[Path, Path], method: str,
            target: float = AGREEMENT_TARGET, **facts: Any) -> dict[str, Any]:
    # Measured on the CPU provider, which runs fp16 graphs too (fp16 is meant for the GPU, where it is faster).
    agreement = precision_agreement(folder, precision, providers=["CPUExecutionProvider"])
    config = ModelConfig.load(folder / "config.json")
    section = config.extra.setdefault("onnx", {})
    section[precision] = {"encoder": targets[0].name, "predictor": targets[1].name, "method": method,
                          "agreement_with_fp32": {**agreement, "target": target, "measured_on": "CPUExecutionProvider"},
                          **facts}
    if agreement["min_cos"] < target:
        warnings.warn(f"{precision} files agree with fp32 at min cosine {agreement['min_cos']:.5f} "
                      f"(target {target})", RuntimeWarning, stacklevel=3)
    config.save(folder / "config.json")
    return section
