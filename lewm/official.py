"""Import the released LeWM checkpoint (weights.pt + Hydra config.json) into one of our model folders.

What is read, and from where:
- weights.pt: a plain state_dict (possibly nested under "state_dict" or "model", keys possibly prefixed
  "model."), loaded with weights_only=True. transformers 4.x ViT key names load as they are (our module names
  are the 4.x ones); 5.x names are renamed to them first.
- Every size is read from the tensor shapes: ViT width, patch, image size (from the number of positions), depth;
  latent and projector widths; action block width, action hidden width; predictor depth, MLP width,
  heads x head width, history (from the positions).
- Only what shapes cannot tell comes from config.json: the ViT head count (`num_attention_heads`, else its
  `size` name: tiny 3, small 6, base 12, large 16; else width / 64), the predictor's `heads` / `dim_head`
  (else 64-wide heads) and `dropout` (else 0.1), looked up in the sections named "encoder" and "predictor"
  wherever they sit in the tree.
- Action statistics: the official files hold none. From --dataset (mean/std of the non-NaN rows of the HDF5
  file's `action` column), else the published PushT statistics, with a warning. The raw env action width is the
  dataset's action width (2 without a dataset); frameskip = action block width / action width.
"""
from __future__ import annotations

import datetime
import hashlib
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lewm.checkpoint import load_state_strict, save_model_folder
from lewm.config import PUSHT_ACTION_MEAN, PUSHT_ACTION_STD, ModelConfig, read_json_object
from lewm.model import LeWM
from lewm_errors import UserError

VIT_HEADS_BY_SIZE = {"tiny": 3, "small": 6, "base": 12, "large": 16}

# transformers 5.x ViT layer names -> the 4.x names our modules carry (applied inside encoder.encoder.layer.N.)
_V5_LAYER_RENAMES = [
    ("attention.q_proj.", "attention.attention.query."),
    ("attention.k_proj.", "attention.attention.key."),
    ("attention.v_proj.", "attention.attention.value."),
    ("attention.o_proj.", "attention.output.dense."),
    ("mlp.fc1.", "intermediate.dense."),
    ("mlp.fc2.", "output.dense."),
]
_V5_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.*)$")


def read_official_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of weights.pt, unwrapped, float tensors as float32."""
    if not path.is_file():
        raise UserError(f"official weights not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise UserError(f"cannot read {path} as a plain state dict (weights_only=True): {err}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    if all(k.startswith("model.") for k in obj):
        obj = {k[len("model."):]: v for k, v in obj.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in obj.items()}


def to_our_key_names(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Rename transformers-5.x ViT keys to the 4.x names; returns the state and which naming it had."""
    renamed, naming = {}, "transformers 4.x"
    for key, value in state.items():
        match = _V5_LAYER.match(key)
        if match:
            naming = "transformers 5.x"
            index, rest = match.groups()
            for new, old in _V5_LAYER_RENAMES:
                if rest.startswith(new):
                    rest = old + rest[len(new):]
                    break
            key = f"encoder.encoder.layer.{index}.{rest}"
        renamed[key] = value
    return renamed, naming


def config_from_official(hydra: dict[str, Any], state: dict[str, torch.Tensor], action_dim: int,
                         action_mean: list[float], action_std: list[float]) -> ModelConfig:
    """Sizes from the tensor shapes (module docstring); a missing tensor leaves the paper value, so that the
    strict load afterwards names it."""
    def shape(key: str) -> tuple[int, ...] | None:
        return tuple(state[key].shape) if key in state else None

    def depth(prefix: str) -> int | None:
        indices = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
        return max(indices) + 1 if indices else None

    sizes: dict[str, Any] = {}
    if cls := shape("encoder.embeddings.cls_token"):
        sizes["enc_width"] = cls[-1]
    if patch := shape("encoder.embeddings.patch_embeddings.projection.weight"):
        sizes["patch_size"] = patch[-1]
        if pos := shape("encoder.embeddings.position_embeddings"):
            sizes["image_size"] = int(round((pos[1] - 1) ** 0.5)) * patch[-1]
    if fc1 := shape("encoder.encoder.layer.0.intermediate.dense.weight"):
        sizes["enc_mlp"] = fc1[0]
    sizes["enc_depth"] = depth("encoder.encoder.layer.")
    if proj := shape("projector.net.0.weight"):
        sizes["proj_hidden"] = proj[0]
    if out := shape("projector.net.3.weight"):
        sizes["latent_dim"] = out[0]
    if embed := shape("action_encoder.embed.0.weight"):
        sizes["act_hidden"], block = embed
        if block % action_dim:
            raise UserError(f"action block width {block} is not a multiple of the action width {action_dim}")
        sizes["frameskip"] = block // action_dim
    if pos := shape("predictor.pos_embedding"):
        sizes["history"] = pos[1]
    sizes["pred_depth"] = depth("predictor.transformer.layers.")
    if mlp := shape("predictor.transformer.layers.0.mlp.net.1.weight"):
        sizes["pred_mlp"] = mlp[0]

    encoder, predictor = _section(hydra, "encoder"), _section(hydra, "predictor")
    width = sizes.get("enc_width", ModelConfig.enc_width)
    sizes["enc_heads"] = (_int(encoder, "num_attention_heads") or VIT_HEADS_BY_SIZE.get(encoder.get("size"))
                          or width // 64)
    head_dim = _int(predictor, "dim_head") or 64
    if to_out := shape("predictor.transformer.layers.0.attn.to_out.0.weight"):
        sizes["pred_heads"] = _int(predictor, "heads") or to_out[1] // head_dim
        sizes["pred_head_dim"] = to_out[1] // sizes["pred_heads"]
    if isinstance(predictor.get("dropout"), (int, float)):
        sizes["dropout"] = float(predictor["dropout"])
    sizes = {k: v for k, v in sizes.items() if v is not None}
    return ModelConfig(**sizes, action_dim=action_dim, action_mean=action_mean, action_std=action_std)


def action_statistics(dataset: Path, chunk_rows: int = 1 << 16) -> tuple[list[float], list[float]]:
    """Mean and std of the rows of the HDF5 `action` column that hold no NaN (two passes, chunked)."""
    import h5py

    if not dataset.is_file():
        raise UserError(f"dataset not found: {dataset}")
    try:
        with h5py.File(dataset, "r") as f:
            if "action" not in f:
                raise UserError(f"{dataset} has no `action` column")
            actions = f["action"]
            if actions.ndim != 2:
                raise UserError(f"{dataset}: `action` must be (N, action_dim), got shape {actions.shape}")
            total, count = np.zeros(actions.shape[1]), 0
            for rows in _finite_chunks(actions, chunk_rows):
                total += rows.sum(axis=0)
                count += len(rows)
            if count < 2:
                raise UserError(f"{dataset}: fewer than 2 non-NaN action rows")
            mean = total / count
            squares = np.zeros_like(mean)
            for rows in _finite_chunks(actions, chunk_rows):
                squares += ((rows - mean) ** 2).sum(axis=0)
    except OSError as err:
        raise UserError(f"cannot read {dataset} as HDF5: {err}") from None
    return mean.tolist(), np.sqrt(squares / count).tolist()


def import_official(folder: str | Path, out: str | Path, dataset: str | Path | None = None) -> Path:
    """Convert FOLDER (weights.pt + config.json) into a model folder at OUT; returns OUT."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise UserError(f"official checkpoint folder not found: {folder}")
    hydra = read_json_object(folder / "config.json", "official config")
    state, naming = to_our_key_names(read_official_weights(folder / "weights.pt"))

    if dataset is not None:
        mean, std = action_statistics(Path(dataset))
        stats_source = f"computed from the non-NaN `action` rows of {Path(dataset).resolve()}"
    else:
        mean, std = list(PUSHT_ACTION_MEAN), list(PUSHT_ACTION_STD)
        stats_source = "the published PushT statistics (no --dataset given)"
        print(f"warning: no --dataset given; using the published PushT action statistics "
              f"mean {mean}, std {std}", file=sys.stderr)

    config = config_from_official(hydra, state, action_dim=len(mean), action_mean=mean, action_std=std)
    model = LeWM(config)
    load_state_strict(model, state, source=str(folder / "weights.pt"))
    card = _card(folder, naming, len(state), stats_source, config)
    save_model_folder(model.eval(), config, out, card=card)
    return out


def _finite_chunks(actions: Any, chunk_rows: int):
    for start in range(0, actions.shape[0], chunk_rows):
        rows = np.asarray(actions[start:start + chunk_rows], dtype=np.float64)
        yield rows[np.isfinite(rows).all(axis=1)]


def _section(tree: Any, name: str) -> dict[str, Any]:
    """The first dict found under key `name` anywhere in a nested Hydra config (breadth first), else {}."""
    queue = [tree]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            if isinstance(node.get(name), dict):
                return node[name]
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)
    return {}


def _int(section: dict[str, Any], key: str) -> int | None:
    """An integer setting; Hydra interpolations left as strings ("${embed_dim}") count as absent."""
    value = section.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _card(folder: Path, naming: str, n_tensors: int, stats_source: str, config: ModelConfig) -> str:
    digest = hashlib.sha256()
    with open(folder / "weights.pt", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return (
        "# LeWM (official release, imported)\n\n"
        "LeWorldModel (Maes, Le Lidec, Scieur, LeCun, Balestriero, 2026, arXiv 2603.19312), PushT.\n\n"
        "## Provenance\n"
        f"- source: {folder.resolve()} (weights.pt sha256 {digest.hexdigest()}, config.json)\n"
        f"- key names: {naming}; all {n_tensors} tensors loaded strictly\n"
        f"- action statistics: {stats_source}: mean {config.action_mean}, std {config.action_std}\n"
        f"- imported {datetime.date.today().isoformat()} by `lewm import-official`\n\n"
        "## Configuration\n"
        f"image {config.image_size}, patch {config.patch_size}, ViT {config.enc_depth}x{config.enc_width} "
        f"({config.enc_heads} heads), latent {config.latent_dim}, history {config.history}, "
        f"frameskip {config.frameskip}, predictor {config.pred_depth} blocks of "
        f"{config.pred_heads}x{config.pred_head_dim} heads.\n"
    )
