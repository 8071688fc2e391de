"""decoder.onnx: exported with the model, checked against torch, served by the engine's decode(), int8 on request;
refused when it no longer matches the decoder weights."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from export.engine import OnnxEngine
from export.onnx_export import export_model_folder
from lewm.config import ModelConfig
from lewm.decoder.model import DecoderConfig, PixelDecoder, TorchDecoder, load_decoder, save_decoder
from lewm.decoder.pixels import to_uint8
from lewm_errors import UserError


@pytest.fixture
def with_decoder(exported_tiny, copy_folder):
    folder = copy_folder(exported_tiny)
    torch.manual_seed(0)
    decoder = PixelDecoder(DecoderConfig.for_model(ModelConfig.load(folder / "config.json"), width=16))
    save_decoder(decoder, folder, {"trained": {"steps": 0}})
    return folder


def test_export_writes_a_decoder_graph_that_agrees_with_torch(with_decoder):
    export_model_folder(with_decoder, int8=True)
    section = ModelConfig.load(with_decoder / "config.json").extra["decoder"]["onnx"]
    assert section["fp32"] == "decoder.onnx"
    assert section["verification"]["max_abs_diff"] <= 1e-4
    assert section["int8"]["agreement_with_fp32"]["psnr_db_mean"] > 30

    engine = OnnxEngine.from_folder(with_decoder)
    assert engine.has_decoder and "pixel decoder" in engine.describe()
    z = np.random.default_rng(1).standard_normal((5, engine.latent_dim)).astype(np.float32)
    frames = engine.decode(z)
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
    reference = TorchDecoder(load_decoder(with_decoder)).decode(z)
    assert np.abs(frames.astype(int) - reference).max() <= 1  # rounding of float differences <= 1e-4
    session = ort.InferenceSession(str(with_decoder / "decoder.onnx"), providers=["CPUExecutionProvider"])
    floats, rounded = session.run(["frames", "frames_uint8"], {"z": z})
    assert np.array_equal(frames, rounded) and np.array_equal(rounded, to_uint8(floats))  # served: rounded in graph
    assert OnnxEngine.from_folder(with_decoder, precision="int8").decode(z).shape == (5, 32, 32, 3)
    pytest.importorskip("onnxconverter_common")
    from export.decoder_onnx import reduce_decoder

    reduce_decoder(with_decoder, "fp16")  # the rounding nodes stay fp32 in the fp16 copy
    half = ort.InferenceSession(str(with_decoder / "decoder.fp16.onnx"),
                                providers=["CPUExecutionProvider"]).run(["frames_uint8"], {"z": z})[0]
    assert half.dtype == np.uint8 and np.abs(half.astype(int) - frames).max() <= 2


def test_engine_without_a_decoder_says_how_to_get_one(exported_tiny):
    engine = OnnxEngine.from_folder(exported_tiny)
    assert not engine.has_decoder
    with pytest.raises(UserError, match="lewm train-decoder"):
        engine.decode(np.zeros((1, engine.latent_dim), np.float32))


def test_engine_refuses_a_decoder_graph_from_other_weights(with_decoder):
    export_model_folder(with_decoder)
    decoder = load_decoder(with_decoder)
    with torch.no_grad():
        decoder.fc.bias.add_(1.0)
    # a retrained decoder.safetensors next to the old decoder.onnx (copied back after save removed it)
    old = (with_decoder / "decoder.onnx").read_bytes()
    save_decoder(decoder, with_decoder)
    assert not (with_decoder / "decoder.onnx").exists()
    (with_decoder / "decoder.onnx").write_bytes(old)
    with pytest.raises(UserError, match="other weights than decoder.safetensors"):
        OnnxEngine.from_folder(with_decoder)


def test_engine_refuses_a_decoder_graph_without_the_rounded_frames(with_decoder):
    """decoder.onnx of an earlier export (float frames only) is named, with the command that replaces it."""
    import onnx

    export_model_folder(with_decoder)
    graph = onnx.load(str(with_decoder / "decoder.onnx"))
    graph.graph.output.pop()  # only "frames" left, as earlier exports wrote it
    onnx.save(graph, str(with_decoder / "decoder.onnx"))
    with pytest.raises(UserError, match="re-export with `lewm export"):
        OnnxEngine.from_folder(with_decoder)
