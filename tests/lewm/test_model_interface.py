"""Both backends (the torch weights and the ONNX engine) conform to lewm.model_interface.WorldModel: the same fields,
the same calls with the same shapes, the same capabilities declared for the same model folder, and numbers that
agree."""
import numpy as np
import pytest

from lewm.model_interface import DECODE, ROLLOUT, WorldModel


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny exported model folder with a pixel decoder, and the same folder without one."""
    import shutil

    import torch

    from export.decoder_onnx import export_decoder
    from export.onnx_export import export_model_folder, make_random_model_folder
    from lewm.config import ModelConfig
    from lewm.decoder.model import DecoderConfig, PixelDecoder, save_decoder

    bare = make_random_model_folder("tiny", tmp_path_factory.mktemp("interface") / "bare", seed=0)
    export_model_folder(bare)
    decoding = shutil.copytree(bare, bare.parent / "decoding")
    torch.manual_seed(0)
    save_decoder(PixelDecoder(DecoderConfig.for_model(ModelConfig.load(decoding / "config.json"), width=16)),
                 decoding)
    export_decoder(decoding)
    return {"bare": bare, "decoding": decoding}


def load(backend: str, folder):
    from export.backends import load_backend

    return load_backend(folder, backend)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_backend_conforms_to_the_model_interface(backend, folders):
    model = load(backend, folders["decoding"])
    assert isinstance(model, WorldModel)
    c = model.config
    assert (model.image_size, model.latent_dim, model.history, model.frameskip) == (
        c.image_size, c.latent_dim, c.history, c.frameskip)
    assert model.precision == "fp32" and model.folder == folders["decoding"]
    assert isinstance(model.name, str) and model.name and isinstance(model.describe(), str)
    assert model.capabilities == {DECODE, ROLLOUT}
    assert load(backend, folders["bare"]).capabilities == {ROLLOUT}

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, c.image_size, c.image_size, 3), dtype=np.uint8)
    z = model.encode(frames)
    assert z.shape == (3, c.latent_dim) and z.dtype == np.float32
    blocks = rng.normal(size=(2, c.history, c.frameskip * c.action_dim)).astype(np.float32)
    window = np.stack([z[:c.history], z[:c.history][::-1]])
    nxt = model.predict(window, blocks)
    assert nxt.shape == (2, c.latent_dim) and nxt.dtype == np.float32
    assert model.fits_rollout(1, 5)
    latents = model.rollout(z[None, :1], rng.normal(size=(1, 5, c.frameskip * c.action_dim)).astype(np.float32))
    assert latents.shape == (1, 5, c.latent_dim)
    pictures = model.decode(z)
    assert pictures.shape == frames.shape and pictures.dtype == np.uint8


def test_the_backends_agree(folders):
    torch_model, engine = load("torch", folders["decoding"]), load("onnx", folders["decoding"])
    frames = np.random.default_rng(1).integers(0, 256, (2, engine.image_size, engine.image_size, 3), dtype=np.uint8)
    z = torch_model.encode(frames)
    assert np.allclose(z, engine.encode(frames), atol=1e-4)
    assert np.abs(torch_model.decode(z).astype(int) - engine.decode(z).astype(int)).max() <= 1
