"""The ONNX Runtime engine: the two-call model interface (ARCHITECTURE.md) over a model folder's ONNX files.

numpy + onnxruntime only (never torch, not even indirectly): the monitor serves the model with this.
It answers like lewm.torch_backend.TorchBackend: encode(frames) -> z, predict(z_window, action_blocks) -> z_next;
where the folder has a pixel decoder (decoder.onnx), a third call decode(z) -> frames (`has_decoder`); and where
it has the planner's rollout graph (rollout.onnx, fp32), rollout(z_context, action_blocks) -> the latents after
each block, for the one context length and horizon it was exported for (`fits_rollout`); and where it has an
uncertainty ensemble (ensemble.onnx), uncertainty(z, action_blocks) -> its disagreement and noise (`has_uncertainty`).

Execution providers are tried in the order TensorRT, CUDA, CPU (those this onnxruntime build offers); one that fails
to start is skipped with a warning, and the live one is `engine.provider` (also in `describe()` and the log).
On the CPU the sessions are tuned for a small shared machine: one intra-op thread, one inter-op thread, no
spinning, sequential execution, all graph optimisations. With `threads` N > 1, a call's batch is cut into N slices
run at once on N threads (rows are independent: frames in the encoder and decoder, candidates in the predictor).
For these small graphs that beats ONNX Runtime's own intra-op threads: on 2 cores, a predictor call of 300
candidates ran 1.8-1.9x faster than on one thread, against 1.1-1.5x with two intra-op threads (BENCHMARKS.md).
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from export.files import (CONFIG_KEY, DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS,
                          ENSEMBLE_INPUTS, ENSEMBLE_OUTPUTS,
                          PREDICTOR_INPUTS, PREDICTOR_OUTPUTS, ROLLOUT_INPUTS, ROLLOUT_OUTPUTS, WEIGHTS_KEY,
                          baked_config, decoder_onnx_file, ensemble_onnx_file, onnx_files, rollout_onnx_file,
                          safetensors_problem, sha256_file, shared_weights_file)
from lewm.config import ModelConfig
from lewm.model_interface import DECODE, ROLLOUT, UNCERTAINTY
from lewm_errors import UserError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PREFERRED = (TENSORRT, CUDA, CPU)


class OnnxEngine:
    def __init__(self, config: ModelConfig, encoder: ort.InferenceSession, predictor: ort.InferenceSession,
                 precision: str = "fp32", folder: Path | None = None, decoder: ort.InferenceSession | None = None,
                 threads: int = 1, rollout: ort.InferenceSession | None = None,
                 ensemble: ort.InferenceSession | None = None):
        self.config = config
        self.latent_dim = config.latent_dim
        self.history = config.history
        self.frameskip = config.frameskip
        self.image_size = config.image_size
        self.precision = precision
        self.folder = folder
        self._encoder = encoder
        self._predictor = predictor
        self._decoder = decoder
        self._rollout = rollout
        self._ensemble = ensemble
        # (context, horizon) of the rollout graph: its inputs' fixed lengths
        self.rollout_shape = None if rollout is None else _rollout_shape(rollout)
        self.provider = encoder.get_providers()[0]
        self.name = f"onnxruntime-{self.provider}"
        self._bind = self.provider in (CUDA, TENSORRT)  # IO binding: outputs allocated on the device, one copy back
        self.threads = 1 if self._bind else max(1, int(threads))
        # the calling thread runs one slice, the pool the others
        self._pool = ThreadPoolExecutor(self.threads - 1, "onnx-slice") if self.threads > 1 else None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_folder(cls, path: str | Path, providers: Sequence[str] | None = None, precision: str = "fp32",
                    threads: int | None = None) -> OnnxEngine:
        """The engine of a model folder holding config.json and the ONNX files of `precision` ("fp32", "fp16" or
        "int8"). `providers`: the execution providers to try in order (default TensorRT, CUDA, CPU as available);
        `threads`: CPU threads per call, each running a slice of the batch (default 1)."""
        folder = Path(path)
        if not folder.is_dir():
            raise UserError(f"model folder not found: {folder}")
        config = ModelConfig.load(folder / "config.json")
        enc_path, pred_path = onnx_files(folder, precision)
        needed = [enc_path, pred_path]
        if precision == "fp32" and config.extra.get("onnx", {}).get("shared_weights"):
            needed.append(shared_weights_file(folder))  # where predictor.onnx keeps its weights
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise UserError(f"model folder {folder} lacks {', '.join(missing)}: {_how_to_make(folder, precision)}")
        candidates = _candidates(providers)
        options = _session_options()
        encoder, live = _first_session(enc_path, candidates, options)
        predictor, _ = _first_session(pred_path, [live], options)
        _check_graphs(folder, config, encoder, predictor, enc_path, pred_path)
        decoder = _decoder_session(folder, config, precision, live, options)
        rollout = _rollout_session(folder, config, precision, live, options)
        ensemble = _ensemble_session(folder, config, live, options)
        engine = cls(config, encoder, predictor, precision=precision, folder=folder, decoder=decoder,
                     threads=1 if threads is None else threads, rollout=rollout, ensemble=ensemble)
        engine.warm_up()
        log.info("%s", engine.describe())
        return engine

    def with_threads(self, threads: int) -> OnnxEngine:
        """The same model with each call's batch split over `threads` threads. It shares this engine's sessions
        (ONNX Runtime runs a session from several threads at once), so it costs no loading: the monitor plans with
        every core while its stream keeps one."""
        return OnnxEngine(self.config, self._encoder, self._predictor, precision=self.precision, folder=self.folder,
                          decoder=self._decoder, threads=threads, rollout=self._rollout, ensemble=self._ensemble)

    def describe(self) -> str:
        where = f" from {self.folder}" if self.folder else ""
        threads = f", {self.threads} thread(s) per call" if self.provider == CPU else ""
        decoder = ", with a pixel decoder" if self.has_decoder else ""
        decoder += ", an uncertainty ensemble" if self.has_uncertainty else ""
        rollout = "" if self.rollout_shape is None else ", a fused rollout of context {}, horizon {}".format(
            *self.rollout_shape)
        return (f"ONNX Runtime {ort.__version__} on {self.provider} ({self.precision}{threads}{decoder}{rollout})"
                f"{where}")

    def warm_up(self) -> None:
        """One call of each graph (the first run allocates and, on GPUs, builds kernels)."""
        s, a = self.image_size, self.config.action_block_dim
        self.encode(np.zeros((1, s, s, 3), np.uint8))
        self.predict(np.zeros((1, self.history, self.latent_dim), np.float32),
                     np.zeros((1, self.history, a), np.float32))
        if self.has_decoder:
            self.decode(np.zeros((1, self.latent_dim), np.float32))
        if self.has_uncertainty:
            self.uncertainty(np.zeros((1, self.latent_dim), np.float32), np.zeros((1, a), np.float32))
        if self.rollout_shape is not None:
            context, horizon = self.rollout_shape
            self.rollout(np.zeros((1, context, self.latent_dim), np.float32),
                         np.zeros((1, context - 1 + horizon, a), np.float32))

    # ------------------------------------------------------------------ the two calls
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, latent_dim) float32."""
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        s = self.image_size
        if frames.ndim != 4 or frames.shape[1:] != (s, s, 3):
            raise ValueError(f"frames must be (N, {s}, {s}, 3) uint8, got {frames.shape}; resize before encoding")
        return self._run(self._encoder, ENCODER_OUTPUTS[0], {ENCODER_INPUTS[0]: frames})

    def predict(self, z_window: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """(B, T<=history, D) latents and (B, T, A) raw action blocks -> (B, D) float32."""
        z = np.ascontiguousarray(z_window, dtype=np.float32)
        a = np.ascontiguousarray(action_blocks, dtype=np.float32)
        b, t = z.shape[:2] if z.ndim == 3 else (None, None)
        if (z.ndim != 3 or not 1 <= t <= self.history or z.shape[2] != self.latent_dim
                or a.shape != (b, t, self.config.action_block_dim)):
            raise ValueError(f"predict takes z_window (B, T<={self.history}, {self.latent_dim}) and action_blocks "
                             f"(B, T, {self.config.action_block_dim}); got {z.shape} and {a.shape}")
        return self._run(self._predictor, PREDICTOR_OUTPUTS[0], {PREDICTOR_INPUTS[0]: z, PREDICTOR_INPUTS[1]: a})

    def fits_rollout(self, context: int, horizon: int) -> bool:
        """Whether rollout() takes this many context latents and blocks to take (the rollout graph's shape)."""
        return self.rollout_shape == (context, horizon)

    def rollout(self, z_context: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """(B, C, D) latents and (B, C - 1 + H, A) raw action blocks (those taken between the latents, then H to
        take) -> (B, H, D): the latent predicted after each of the H blocks (predict on a sliding window, fused)."""
        z = np.ascontiguousarray(z_context, dtype=np.float32)
        a = np.ascontiguousarray(action_blocks, dtype=np.float32)
        if self.rollout_shape is None:
            raise UserError(f"this model folder has no rollout graph (rollout.onnx, fp32); run `lewm export --model "
                            f"{self.folder or 'DIR'}` to make it")
        context, horizon = self.rollout_shape
        blocks = (context - 1 + horizon, self.config.action_block_dim)
        if z.shape[1:] != (context, self.latent_dim) or a.shape != (len(z), *blocks):
            raise ValueError(f"this rollout graph takes z_context (B, {context}, {self.latent_dim}) and action_blocks "
                             f"(B, {blocks[0]}, {blocks[1]}); got {z.shape} and {a.shape}")
        return self._run(self._rollout, ROLLOUT_OUTPUTS[0], {ROLLOUT_INPUTS[0]: z, ROLLOUT_INPUTS[1]: a})

    @property
    def has_uncertainty(self) -> bool:
        return self._ensemble is not None

    def uncertainty(self, z: np.ndarray, action_blocks: np.ndarray) -> np.ndarray:
        """(N, D) latents and (N, A) raw action blocks -> (N, 2): the disagreement and noise of the ensemble's
        forecast of the step from each latent under its block (lewm.ensemble.model.UNCERTAINTY_PARTS)."""
        if self._ensemble is None:
            raise UserError(f"this model folder has no uncertainty ensemble (ensemble.onnx); train one with "
                            f"`lewm train-ensemble --model {self.folder or 'DIR'} --data DATA.h5`")
        z = np.ascontiguousarray(z, dtype=np.float32)
        a = np.ascontiguousarray(action_blocks, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or a.shape != (len(z), self.config.action_block_dim):
            raise ValueError(f"uncertainty takes z (N, {self.latent_dim}) and action_blocks "
                             f"(N, {self.config.action_block_dim}); got {z.shape} and {a.shape}")
        return self._run(self._ensemble, ENSEMBLE_OUTPUTS[0], {ENSEMBLE_INPUTS[0]: z, ENSEMBLE_INPUTS[1]: a})

    @property
    def has_decoder(self) -> bool:
        return self._decoder is not None

    @property
    def capabilities(self) -> frozenset[str]:
        """DECODE where the folder has decoder.onnx, ROLLOUT where it has rollout.onnx, UNCERTAINTY where it has
        ensemble.onnx (lewm.model_interface)."""
        return frozenset([*([DECODE] if self.has_decoder else []), *([ROLLOUT] if self._rollout is not None else []),
                          *([UNCERTAINTY] if self._ensemble is not None else [])])

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(N, latent_dim) latents -> (N, H, W, 3) uint8 frames of what they picture (the pixel decoder)."""
        if self._decoder is None:
            raise UserError(f"this model folder has no pixel decoder (decoder.onnx); train one with "
                            f"`lewm train-decoder --model {self.folder or 'DIR'} --data DATA.h5`, then export")
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"decode takes latents (N, {self.latent_dim}); got {z.shape}")
        return self._run(self._decoder, DECODER_OUTPUTS[1], {DECODER_INPUTS[0]: z})  # rounded in the graph

    def _run(self, session: ort.InferenceSession, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        rows = len(next(iter(feeds.values())))
        if self._pool is None or rows < 2:
            return self._run_slice(session, output, feeds)
        bounds = np.linspace(0, rows, min(self.threads, rows) + 1).astype(int)
        slices = [{name: value[a:b] for name, value in feeds.items()} for a, b in zip(bounds[:-1], bounds[1:])]
        pending = [self._pool.submit(self._run_slice, session, output, part) for part in slices[1:]]
        first = self._run_slice(session, output, slices[0])
        return np.concatenate([first] + [job.result() for job in pending])

    def _run_slice(self, session: ort.InferenceSession, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if not self._bind:
            return session.run([output], feeds)[0]
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(output, "cuda")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0].astype(np.float32, copy=False)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), where the platform says; else os.cpu_count()."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ---------------------------------------------------------------------- sessions
def _how_to_make(folder: Path, precision: str) -> str:
    if precision == "fp32":
        return f"run `lewm export --model {folder}` to write them"
    return f"run `lewm export --model {folder} --{precision}` to write them (after the fp32 export)"


def _candidates(providers: Sequence[str] | None) -> list[str]:
    available = ort.get_available_providers()
    if providers is None:
        return [p for p in PREFERRED if p in available]
    unknown = [name for name in providers if name not in ort.get_all_providers()]
    if unknown:
        raise UserError(f"unknown execution provider {', '.join(unknown)}; this onnxruntime build has "
                        f"{', '.join(available)}")
    chosen = []
    for name in providers:
        if name in available:
            chosen.append(name)
        else:
            warnings.warn(f"execution provider {name} is not in this onnxruntime build "
                          f"(available: {', '.join(available)}); skipping it", RuntimeWarning, stacklevel=3)
    if CPU not in chosen:
        chosen.append(CPU)  # the last resort is always there
    return chosen


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: fallbacks are reported by this module
    return options


def _provider_chain(name: str, folder: Path) -> list:
    """The providers list given to ONNX Runtime when `name` is wanted: it, then the ones below it, so that nodes
    a GPU provider cannot run still run."""
    if name == TENSORRT:
        cache = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder / "trt_cache")}
        return [(TENSORRT, cache), CUDA, CPU]
    if name == CUDA:
        return [CUDA, CPU]
    return [name] if name == CPU else [name, CPU]


def _first_session(path: Path, candidates: list[str], options: ort.SessionOptions, disabled: Sequence[str] = ()
                   ) -> tuple[ort.InferenceSession, str]:
    """The session of the first provider that starts; `disabled`: graph rewrites to leave out."""
    problems = []
    for name in candidates:
        try:
            chain = _provider_chain(name, path.parent)
            leave_out = {"disabled_optimizers": list(disabled)} if disabled else {}
            session = ort.InferenceSession(str(path), sess_options=options, providers=chain, **leave_out)
        except Exception as err:  # onnxruntime raises several types (Fail, RuntimeException, ...)
            if name == CPU:  # the CPU provider runs any whole graph: the file itself is damaged
                precision = next((p for p in ("int8", "fp16") if f".{p}." in path.name), "fp32")
                reason = " ".join(str(err).split())[:200]
                raise UserError(f"{path} is damaged or not an ONNX file ({reason}); "
                                f"{_how_to_make(path.parent, precision)} again") from None
            problems.append(f"{name}: {err}")
            warnings.warn(f"{name} failed to start a session for {path.name} ({err}); trying the next provider",
                          RuntimeWarning, stacklevel=3)
            continue
        live = session.get_providers()[0]
        if live != name:
            warnings.warn(f"{name} was asked for but {path.name} runs on {live}", RuntimeWarning, stacklevel=3)
        return session, live
    raise UserError(f"no execution provider could run {path}: " + "; ".join(problems))


def _decoder_session(folder: Path, config: ModelConfig, precision: str, provider: str,
                     options: ort.SessionOptions) -> ort.InferenceSession | None:
    """The pixel decoder's session, or None where the folder has no decoder.onnx. A reduced precision uses
    decoder.<precision>.onnx when there is one, else decoder.onnx. A graph that does not fit the config, or was
    exported from other decoder weights than decoder.safetensors, raises a UserError."""
    path = decoder_onnx_file(folder, precision)
    if not path.is_file():
        path = decoder_onnx_file(folder)
    if not path.is_file():
        return None
    session, _ = _first_session(path, [provider], options)
    d, s = config.latent_dim, config.image_size
    have = ([(a.name, a.type, a.shape) for a in session.get_inputs()],
            [(a.name, a.type, a.shape) for a in session.get_outputs()])
    problems = [] if ([a[0] for a in have[0]] == DECODER_INPUTS and [a[0] for a in have[1]] == DECODER_OUTPUTS
                      ) else [f"{path.name} has inputs/outputs {have}, not {DECODER_INPUTS}/{DECODER_OUTPUTS}"]
    if not problems:
        problems += _shape_problems(path.name, "z", "tensor(float)", [None, d], *have[0][0][1:])
        problems += _shape_problems(path.name, "frames", "tensor(float)", [None, s, s, 3], *have[1][0][1:])
        problems += _shape_problems(path.name, "frames_uint8", "tensor(uint8)", [None, s, s, 3], *have[1][1][1:])
    problems += _baked_problems(path.name, session, config)
    weights = folder / "decoder.safetensors"
    stamped = session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
    if stamped and weights.is_file() and sha256_file(weights) != stamped:
        problems.append(f"{path.name} was exported from other weights than decoder.safetensors")
    if problems:
        raise UserError(f"the pixel decoder in {folder} does not match its config.json: " + "; ".join(problems)
                        + f"; re-export with `lewm export --model {folder}`")
    return session


def _rollout_session(folder: Path, config: ModelConfig, precision: str, provider: str,
                     options: ort.SessionOptions) -> ort.InferenceSession | None:
    """The rollout graph's session (fp32 only; None where there is no rollout.onnx or another precision is asked
    for: the planner then calls the predictor step by step). One that does not fit the config raises a UserError."""
    path = rollout_onnx_file(folder)
    if precision != "fp32" or not path.is_file():
        return None
    # On the CPU, the rollout's plans ran 10-15% faster without the fused SkipLayerNormalization (BENCHMARKS.md)
    session, _ = _first_session(path, [provider], options, disabled=["SkipLayerNormFusion"] if provider == CPU else [])
    names = ([a.name for a in session.get_inputs()], [a.name for a in session.get_outputs()])
    problems = [] if names == (ROLLOUT_INPUTS, ROLLOUT_OUTPUTS) else [
        f"{path.name} has inputs/outputs {names}, not {ROLLOUT_INPUTS}/{ROLLOUT_OUTPUTS}"]
    if not problems:
        z, a = (arg.shape for arg in session.get_inputs())
        if not (isinstance(z[1], int) and isinstance(a[1], int) and a[1] >= z[1] and z[1] <= config.history):
            problems.append(f"{path.name} takes z_context {z} and action_blocks {a}: not a fixed context of at "
                            f"most history={config.history} latents with at least one block to take")
        problems += _shape_problems(path.name, "z_context", "tensor(float)", [None, None, config.latent_dim],
                                    session.get_inputs()[0].type, z)
        problems += _shape_problems(path.name, "action_blocks", "tensor(float)",
                                    [None, None, config.action_block_dim], session.get_inputs()[1].type, a)
    problems += _baked_problems(path.name, session, config)
    if problems:
        raise UserError(f"the rollout graph in {folder} does not match its config.json: " + "; ".join(problems)
                        + f"; re-export with `lewm export --model {folder}`")
    return session


def _ensemble_session(folder: Path, config: ModelConfig, provider: str, options: ort.SessionOptions
                      ) -> ort.InferenceSession | None:
    """The uncertainty ensemble's session, or None where the folder has no ensemble.onnx. One whose inputs do not
    fit the config raises a UserError."""
    path = ensemble_onnx_file(folder)
    if not path.is_file():
        return None
    session, _ = _first_session(path, [provider], options)
    have = [(arg.name, arg.shape[1]) for arg in session.get_inputs()]
    want = list(zip(ENSEMBLE_INPUTS, (config.latent_dim, config.action_block_dim)))
    if have != want or [arg.name for arg in session.get_outputs()] != ENSEMBLE_OUTPUTS:
        raise UserError(f"the ensemble graph in {folder} takes {have}, not {want}; retrain it with "
                        f"`lewm train-ensemble --model {folder} --data DATA.h5 --force`")
    return session


def _rollout_shape(session: ort.InferenceSession) -> tuple[int, int]:
    z, a = (arg.shape for arg in session.get_inputs())
    return z[1], a[1] - z[1] + 1


# ---------------------------------------------------------------------- does the folder's config match the graphs?
def _check_graphs(folder: Path, config: ModelConfig, encoder: ort.InferenceSession, predictor: ort.InferenceSession,
                  enc_path: Path, pred_path: Path) -> None:
    fix = f"re-export with `lewm export --model {folder}`"
    a, d, s = config.action_block_dim, config.latent_dim, config.image_size
    expected = {
        enc_path.name: (encoder, {"frames": ("tensor(uint8)", [None, s, s, 3])}, {"z": ("tensor(float)", [None, d])}),
        pred_path.name: (predictor, {"z_window": ("tensor(float)", [None, None, d]),
                                     "action_blocks": ("tensor(float)", [None, None, a])},
                         {"z_next": ("tensor(float)", [None, d])}),
    }
    problems = []
    for file, (session, inputs, outputs) in expected.items():
        for kind, want, got in (("input", inputs, session.get_inputs()), ("output", outputs, session.get_outputs())):
            have = {arg.name: (arg.type, arg.shape) for arg in got}
            if sorted(have) != sorted(want):
                problems.append(f"{file} has {kind}s {sorted(have)}, expected {sorted(want)}")
                continue
            for name, (dtype, shape) in want.items():
                problems += _shape_problems(file, name, dtype, shape, *have[name])
        problems += _baked_problems(file, session, config)
    # T: dynamic up to history in our exports; a fixed T must be the history
    t_dim = {arg.name: arg.shape for arg in predictor.get_inputs()}.get("z_window", [None, None])[1]
    if isinstance(t_dim, int) and t_dim != config.history:
        problems.append(f"{pred_path.name} takes windows of exactly {t_dim} steps but config.json says "
                        f"history={config.history}")
    if problems:
        raise UserError(f"the ONNX files in {folder} do not match its config.json: " + "; ".join(problems)
                        + f"; {fix}")
    weights = folder / "weights.safetensors"
    stamped = encoder.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
    if stamped and weights.is_file() and sha256_file(weights) != stamped:
        damage = safetensors_problem(weights)
        if damage:
            raise UserError(f"{weights} is corrupt ({damage}); restore it (the ONNX files were exported from the "
                            f"intact file)")
        raise UserError(f"the ONNX files in {folder} were exported from other weights than its "
                        f"weights.safetensors; {fix}")


def _shape_problems(file: str, name: str, dtype: str, shape: list, got_type: str, got_shape: list) -> list[str]:
    out = []
    if got_type != dtype:
        out.append(f"{file} {name} is {got_type}, expected {dtype}")
    if len(got_shape) != len(shape):
        return out + [f"{file} {name} has shape {got_shape}, expected rank {len(shape)}"]
    for axis, (want, got) in enumerate(zip(shape, got_shape)):
        if want is not None and isinstance(got, int) and got != want:
            out.append(f"{file} {name} has size {got} on axis {axis}, config.json implies {want}")
    return out


def _baked_problems(file: str, session: ort.InferenceSession, config: ModelConfig) -> list[str]:
    stamped = session.get_modelmeta().custom_metadata_map.get(CONFIG_KEY)
    if not stamped:
        return []
    try:
        baked = json.loads(stamped)
    except json.JSONDecodeError:
        return [f"{file} carries an unreadable {CONFIG_KEY}"]
    now = baked_config(config)
    return [f"{file} was exported with {key}={baked[key]} but config.json says {key}={now[key]}"
            for key in now if key in baked and not _same(baked[key], now[key])]


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b
