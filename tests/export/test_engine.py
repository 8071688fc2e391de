"""The ONNX Runtime engine: interface, refusals, provider fallback, no torch, reduced precision."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import export.engine as engine_module
from export.engine import OnnxEngine
from lewm_errors import UserError


def test_engine_interface(exported_tiny):
    engine = OnnxEngine.from_folder(exported_tiny)
    assert (engine.latent_dim, engine.history, engine.frameskip, engine.image_size) == (32, 3, 5, 32)
    assert engine.provider == "CPUExecutionProvider" and engine.name == "onnxruntime-CPUExecutionProvider"
    assert "CPUExecutionProvider" in engine.describe()
    z = engine.encode(np.zeros((4, 32, 32, 3), np.uint8))
    assert z.shape == (4, 32) and z.dtype == np.float32
    assert engine.predict(np.zeros((33, 3, 32), np.float32), np.zeros((33, 3, 10), np.float32)).shape == (33, 32)
    with pytest.raises(ValueError, match="resize"):
        engine.encode(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="T<=3"):
        engine.predict(np.zeros((1, 4, 32), np.float32), np.zeros((1, 4, 10), np.float32))


def test_cpu_options(exported_tiny):
    engine = OnnxEngine.from_folder(exported_tiny)
    options = engine._encoder.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert OnnxEngine.from_folder(exported_tiny, threads=2)._encoder.get_session_options().intra_op_num_threads == 1


def test_threads_split_the_batch_and_keep_its_order(exported_tiny):
    """threads=3 runs slices of each call's batch at once; the rows come back as one thread computes them."""
    one, three = OnnxEngine.from_folder(exported_tiny), OnnxEngine.from_folder(exported_tiny, threads=3)
    assert "3 thread(s) per call" in three.describe()
    rng = np.random.default_rng(0)
    for rows in (1, 2, 7):
        frames = rng.integers(0, 256, (rows, 32, 32, 3), dtype=np.uint8)
        z = rng.standard_normal((rows, 3, 32)).astype(np.float32)
        a = rng.standard_normal((rows, 3, 10)).astype(np.float32)
        np.testing.assert_allclose(three.encode(frames), one.encode(frames), atol=1e-6)
        np.testing.assert_allclose(three.predict(z, a), one.predict(z, a), atol=1e-6)
        assert three.predict(z, a).shape == (rows, 32)
    view = one.with_threads(3)
    assert view.threads == 3 and view._encoder is one._encoder and one.threads == 1
    np.testing.assert_allclose(view.predict(z, a), one.predict(z, a), atol=1e-6)


def test_missing_files_say_how_to_make_them(exported_tiny, copy_folder):
    folder = copy_folder(exported_tiny)
    (folder / "predictor.onnx").unlink()
    with pytest.raises(UserError, match=r"predictor.onnx.*lewm export --model"):
        OnnxEngine.from_folder(folder)
    (folder / "predictor.weights").unlink()  # where predictor.onnx and rollout.onnx keep their weights
    with pytest.raises(UserError, match=r"lacks predictor.onnx, predictor.weights: run `lewm export --model"):
        OnnxEngine.from_folder(folder)
    with pytest.raises(UserError, match=r"--int8"):
        OnnxEngine.from_folder(exported_tiny, precision="int8")
    with pytest.raises(UserError, match="precision"):
        OnnxEngine.from_folder(exported_tiny, precision="fp8")


@pytest.mark.parametrize("field, value", [("latent_dim", 48), ("history", 4), ("image_size", 64), ("frameskip", 4),
                                          ("action_mean", [0.5, 0.5])])
def test_mismatched_config_is_refused(exported_tiny, copy_folder, field, value):
    folder = copy_folder(exported_tiny)
    data = json.loads((folder / "config.json").read_text())
    data[field] = value
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=rf"do not match its config.json.*{field}.*lewm export --model"):
        OnnxEngine.from_folder(folder)


def test_other_weights_are_refused(exported_tiny, copy_folder):
    from export.onnx_export import make_random_model_folder

    folder = copy_folder(exported_tiny)
    make_random_model_folder("tiny", folder, seed=1)  # same sizes, new weights; the ONNX files stay
    with pytest.raises(UserError, match="other weights"):
        OnnxEngine.from_folder(folder)


def test_unavailable_provider_falls_back_to_cpu(exported_tiny):
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider"):
        engine = OnnxEngine.from_folder(exported_tiny, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert engine.provider == "CPUExecutionProvider"
    assert engine.encode(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 32)


def test_provider_that_fails_to_start_is_skipped(exported_tiny, monkeypatch):
    """A provider the build lists but that cannot create a session (e.g. CUDA without its libraries)."""
    real_session = engine_module.ort.InferenceSession

    def session(path, sess_options=None, providers=None, **options):
        if any("CUDA" in (p if isinstance(p, str) else p[0]) for p in providers):
            raise RuntimeError("CUDA driver not found (test)")
        return real_session(path, sess_options=sess_options, providers=providers, **options)

    monkeypatch.setattr(engine_module.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(engine_module.ort, "InferenceSession", session)
    with pytest.warns(RuntimeWarning, match="failed to start"):
        engine = OnnxEngine.from_folder(exported_tiny)
    assert engine.provider == "CPUExecutionProvider"


def test_the_rollout_graph_serves_its_own_shape_only(exported_tiny, copy_folder):
    engine = OnnxEngine.from_folder(exported_tiny)
    assert engine.rollout_shape == (1, 5) and engine.fits_rollout(1, 5)
    assert "a fused rollout of context 1, horizon 5" in engine.describe()
    assert not engine.fits_rollout(2, 5) and not engine.fits_rollout(1, 4)
    assert engine.with_threads(2).fits_rollout(1, 5)
    with pytest.raises(ValueError, match=r"z_context \(B, 1, 32\)"):
        engine.rollout(np.zeros((2, 1, 32), np.float32), np.zeros((2, 4, 10), np.float32))
    folder = copy_folder(exported_tiny)
    (folder / "rollout.onnx").unlink()
    bare = OnnxEngine.from_folder(folder)  # the predictor still loads: its weights are in predictor.weights
    assert bare.rollout_shape is None and not bare.fits_rollout(1, 5) and "fused rollout" not in bare.describe()
    with pytest.raises(UserError, match="no rollout graph"):
        bare.rollout(np.zeros((2, 1, 32), np.float32), np.zeros((2, 5, 10), np.float32))


def test_default_providers_on_this_machine_run_without_warnings(exported_tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OnnxEngine.from_folder(exported_tiny)


def test_engine_does_not_import_torch():
    code = "import export.engine, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_int8_agreement(exported_tiny, copy_folder):
    from export.quantize import precision_agreement, quantize_model_folder

    folder = copy_folder(exported_tiny)
    section = quantize_model_folder(folder)
    agreement = section["int8"]["agreement_with_fp32"]
    assert agreement["min_cos"] > 0.99 and agreement["mean_cos"] > 0.99
    assert json.loads((folder / "config.json").read_text())["onnx"]["int8"]["encoder"] == "encoder.int8.onnx"
    engine = OnnxEngine.from_folder(folder, precision="int8")
    assert engine.precision == "int8" and engine.encode(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2, 32)
    again = precision_agreement(folder, "int8", frames=4)
    assert again["min_cos"] > 0.99


def test_int8_keeps_the_most_sensitive_products_in_fp32_when_short_of_the_target(exported_tiny, copy_folder,
                                                                                   tmp_path, monkeypatch):
    import shutil

    import onnx

    import export.quantize as quantize
    from export.quantize import MAX_KEPT_FP32, precision_agreement, quantize_model_folder, selection_key

    folder = copy_folder(exported_tiny)
    fully = quantize_model_folder(folder, target=0.0)["int8"]
    assert fully["kept_fp32"]["encoder"] == fully["kept_fp32"]["predictor"] == []
    cache = tmp_path / "cache"
    with pytest.warns(RuntimeWarning, match="min cosine"):  # no file short of fp32 itself reaches cosine 1
        section = quantize_model_folder(folder, target=1.0, selection_cache=cache)["int8"]
    kept = section["kept_fp32"]["encoder"]
    assert len(kept) == MAX_KEPT_FP32 and len(set(kept)) == MAX_KEPT_FP32
    graph = onnx.load(str(folder / "encoder.int8.onnx")).graph
    float_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    left = {n.name: n for n in graph.node}
    assert all(left[name].op_type == "MatMul" and float_weights & set(left[name].input) for name in kept)
    recorded = json.loads((folder / "config.json").read_text())["onnx"]["int8"]
    assert recorded["kept_fp32"]["encoder"] == kept and recorded["agreement_with_fp32"]["target"] == 1.0
    closer = precision_agreement(folder, "int8")
    assert closer["encode_min_cos"] > fully["agreement_with_fp32"]["encode_min_cos"]

    # the selection is cached under the weights' key: the same weights again are quantised without a scan
    assert [p.name for p in cache.iterdir()] == [f"int8-{selection_key(folder, 1.0)}.json"]
    other = Path(shutil.copytree(exported_tiny, tmp_path / "other"))
    monkeypatch.setattr(quantize, "keep_sensitive_in_fp32", lambda *args: pytest.fail("scanned again"))
    with pytest.warns(RuntimeWarning, match="min cosine"):
        again = quantize_model_folder(other, target=1.0, selection_cache=cache)["int8"]
    assert {g: again["kept_fp32"][g] for g in ("encoder", "predictor")} == {
        g: section["kept_fp32"][g] for g in ("encoder", "predictor")}
    assert again["agreement_with_fp32"]["min_cos"] == pytest.approx(section["agreement_with_fp32"]["min_cos"])
    assert selection_key(other, 0.999) != selection_key(other, 1.0)
    (other / "weights.safetensors").write_bytes(b"other weights")
    assert selection_key(other, 1.0) != selection_key(folder, 1.0)


def test_fp16_files_run_and_agree_with_fp32(exported_tiny, copy_folder):
    from export.quantize import convert_fp16_model_folder, fp16_available

    if not fp16_available():
        pytest.skip("onnxconverter-common is not installed here")
    folder = copy_folder(exported_tiny)
    section = convert_fp16_model_folder(folder)
    assert section["fp16"]["agreement_with_fp32"]["min_cos"] > 0.999
    engine = OnnxEngine.from_folder(folder, precision="fp16")
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    reference = OnnxEngine.from_folder(folder).encode(frames)
    assert engine.encode(frames).dtype == np.float32
    np.testing.assert_allclose(engine.encode(frames), reference, atol=0.05)


def test_fp16_says_when_it_is_not_available(exported_tiny, copy_folder, monkeypatch):
    """On a machine without onnxconverter-common (made so here by hiding the module) fp16 is refused with a clear
    error and no file is written."""
    import sys

    from export.quantize import convert_fp16_model_folder, fp16_available

    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)  # an import of it now fails, as if not installed
    assert not fp16_available()
    folder = copy_folder(exported_tiny)
    with pytest.raises(UserError, match="not available on this machine"):
        convert_fp16_model_folder(folder)
    assert not list(folder.glob("*.fp16.onnx"))


def test_an_unknown_provider_is_an_error_listing_the_available_ones(exported_tiny):
    with pytest.raises(UserError, match="unknown execution provider Bogus; this onnxruntime build has .*CPU"):
        OnnxEngine.from_folder(exported_tiny, providers=["Bogus"])


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_a_damaged_onnx_file_is_named_with_how_to_remake_it(exported_tiny, copy_folder, damage):
    folder = copy_folder(exported_tiny)
    encoder = folder / "encoder.onnx"
    data = encoder.read_bytes()
    encoder.write_bytes(data[:len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning first: the one error says it all
        with pytest.raises(UserError) as caught:
            OnnxEngine.from_folder(folder)
    message = str(caught.value)
    assert f"{encoder} is damaged or not an ONNX file" in message and "lewm export --model" in message
    assert "\n" not in message
