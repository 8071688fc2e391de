"""Probe 6, what the model imagines: the pixel decoder's reconstructions, and its pictures of forecasts by horizon.

Reconstruction: decode(encode(frame)) against the frame (PSNR, SSIM) on held-out episodes. Imagination: the
horizon h forecasts of lewm.stream.LatentStream (real actions, from the real context) decoded and compared with
the frames they forecast: PSNR, and the agent's and block's positions read from the picture by colour
(lewm/decoder/pixels.py) against the true state. Baselines per horizon: the reconstruction of the true future frame
(the decoder's own floor), and "still" (the start frame's state taken as the forecast: how far things moved).

Every horizon is scored on the same true frames: those that a forecast reaches at every h = 1..horizon from a full
real context. Pooled by start frame instead, h = 1 would take in the episodes' early frames that larger h cannot
reach, the floor would change with h (on the bundled model it fell from 0.42 to 0.30 px for the block) and hide
how the forecast itself degrades.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lewm.model_interface import DECODE
from lewm.decoder.pixels import position_errors, psnr, read_positions, ssim, state_positions
from lewm.probes.common import episode_resamples, nan_stat, new_figure, save_figure, shuffle_banks, write_json

MAX_HORIZON = 10
EXAMPLES = 3
DEFINITIONS = {
    "reconstruction": "decode(encode(frame)) vs the frame, on every `stride`-th frame of the episodes: PSNR (dB, "
                      "uint8 range) and SSIM (11 x 11 Gaussian window, sigma 1.5, mean over pixels and channels)",
    "imagined": "decode(z_hat) of the horizon h forecast (real actions, from the real context of `history` frames) "
                "of every `stride`-th frame from frameskip * (horizon + history - 1) on, vs that true frame: every h "
                "is scored on the same frames (start = frame - frameskip * h)",
    "agent_px / block_px": "distance in model pixels between the centroid of the agent's (block's) colour in the "
                           "picture and its true position (agent: state xy; block: the T's area centroid), "
                           "image_size px frames",
    "block_axis_deg": "difference in degrees (0..90) between the principal axis of the block's pixels and that of "
                      "the true T (the axis is defined modulo 180 degrees)",
    "found": "share of pictures in which the agent (block) colour was found at all (errors are over those)",
    "true_frame": "the same reading of the true frames: the floor of the colour reading itself",
    "reconstructed": "the same reading of decode(encode(true future frame)): the decoder's own floor at that frame",
    "still": "the start frame's true positions taken as the forecast: how far things moved in h model steps",
    "median_rise": "the imagined error's median at h = horizon minus its median at h = 1 (same frames), and a 95% "
                   "interval over the choice of episodes: the 2.5th and 97.5th percentiles over 1000 resamples of "
                   "whole episodes drawn with replacement",
}


def decoder_for(model):
    """The model where it can decode (lewm.model_interface.DECODE), else None."""
    return model if DECODE in model.capabilities else None


def first_scored_frame(model, horizon: int) -> int:
    """The first frame the probe scores: the first one whose h = horizon forecast starts from a full context."""
    return model.frameskip * (horizon + model.history - 1)


def fitting_horizon(model, episodes: list, longest: int) -> int:
    """The longest horizon, at most `longest` (and at least 1), whose scored frames fit the shortest episode."""
    last_frame = min(len(e.frames) for e in episodes) - 1
    fits = [h for h in range(1, longest + 1) if first_scored_frame(model, h) <= last_frame]
    return fits[-1] if fits else 1


def run_decoder(model, decoder, episodes: list, horizon: int = MAX_HORIZON, stride: int = 5,
                out: str | Path | None = None, batch: int = 256) -> dict:
    """JSON-ready results for h = 1..horizon; with `out`, also writes decoder.json and decoder.png."""
    from lewm.stream import LatentStream

    fs, size = model.frameskip, model.image_size
    first_target = first_scored_frame(model, horizon)
    banks = shuffle_banks(episodes, fs)
    rec_z, rec_frames, rec_states = [], [], []
    fc_z, fc_frames, fc_states, fc_start_states, fc_h, fc_key = [], [], [], [], [], []
    for i, episode in enumerate(tqdm(episodes, desc="decoder: stream", leave=False)):
        stream = LatentStream(model, horizon=horizon, shuffle_bank=banks[i], seed=i, keep_forecasts=True)
        for t in range(len(episode.frames)):
            record = stream.step(episode.frames[t], episode.actions[t])
            if t % stride == 0:
                rec_z.append(record.z), rec_frames.append(episode.frames[t]), rec_states.append(episode.states[t])
            if t < first_target or t % stride:
                continue
            for h in range(1, horizon + 1):
                start = t - fs * h
                z_hat = record.forecast_z[0, h - 1]
                if np.all(np.isfinite(z_hat)):
                    fc_z.append(z_hat), fc_frames.append(episode.frames[t]), fc_states.append(episode.states[t])
                    fc_start_states.append(episode.states[start]), fc_h.append(h), fc_key.append((i, start))
    if not fc_z:
        from lewm_errors import UserError
        raise UserError(f"the episodes are too short: the decoder probe scores frames from {first_target} on "
                        "(a forecast at every horizon from a full context); lengthen them (--steps)")

    def decode_all(z):
        z = np.stack(z)
        return np.concatenate([decoder.decode(z[j:j + batch]) for j in
                               tqdm(range(0, len(z), batch), desc="decoder: decode", leave=False)])

    rec_frames, fc_frames = np.stack(rec_frames), np.stack(fc_frames)
    reconstructed = decode_all(rec_z)
    imagined = decode_all(fc_z)
    fc_h = np.asarray(fc_h)
    fc_ref = state_positions(np.stack(fc_states), size)
    imagined_err = position_errors(_read(imagined, batch), fc_ref)
    true_err = position_errors(_read(fc_frames, batch), fc_ref)
    still_err = position_errors(state_positions(np.stack(fc_start_states), size), fc_ref)
    # the decoder's floor at each forecast frame: the reconstruction of that frame (the stream's own z there)
    future_rec = decode_all(_future_latents(model, episodes, fc_key, fc_h, fs, batch))
    future_rec_err = position_errors(_read(future_rec, batch), fc_ref)
    rec_psnr, rec_ssim = psnr(reconstructed, rec_frames), ssim(reconstructed, rec_frames)
    rec_err = position_errors(_read(reconstructed, batch), state_positions(np.stack(rec_states), size))
    img_psnr, future_rec_psnr = psnr(imagined, fc_frames), psnr(future_rec, fc_frames)

    hs = list(range(1, horizon + 1))
    by_h = [fc_h == h for h in hs]
    fc_episode = np.asarray(fc_key)[:, 0]
    result = {
        "probe": "decoder",
        "definitions": DEFINITIONS,
        "episodes": len(episodes),
        "stride": stride,
        "image_size": size,
        "reconstruction": {
            "frames": int(len(rec_frames)),
            "psnr_db_mean": float(rec_psnr.mean()), "psnr_db_median": float(np.median(rec_psnr)),
            "ssim_mean": float(rec_ssim.mean()), "ssim_median": float(np.median(rec_ssim)),
            **{f"{k}_median": _stat(np.nanmedian, v) for k, v in rec_err.items()},
        },
        "horizons": hs,
        "count": [int(m.sum()) for m in by_h],
        "imagined_psnr_db_mean": [float(img_psnr[m].mean()) for m in by_h],
        "imagined_psnr_db_median": [float(np.median(img_psnr[m])) for m in by_h],
        "reconstructed_psnr_db_mean": [float(future_rec_psnr[m].mean()) for m in by_h],
    }
    for label, errors in (("imagined", imagined_err), ("reconstructed", future_rec_err), ("true_frame", true_err),
                          ("still", still_err)):
        for key, values in errors.items():
            result[f"{label}_{key}_median"] = [_stat(np.nanmedian, values[m]) for m in by_h]
            if label == "imagined":
                result[f"imagined_{key}_mean"] = [_stat(np.nanmean, values[m]) for m in by_h]
                result[f"imagined_{key}_q75"] = [_stat(_q75, values[m]) for m in by_h]
                result[f"imagined_{key}_median_rise"] = median_rise(values, fc_h, fc_episode, horizon)
    result["imagined_agent_found"] = [float(np.isfinite(imagined_err["agent_px"][m]).mean()) for m in by_h]
    result["imagined_block_found"] = [float(np.isfinite(imagined_err["block_px"][m]).mean()) for m in by_h]
    if out is not None:
        write_json(Path(out) / "decoder.json", result)
        examples = _examples(episodes, fc_key, fc_h, imagined, fc_frames, reconstructed, horizon, fs, stride)
        save_figure(decoder_figure(result, examples), Path(out) / "decoder.png")
    return result


def median_rise(values: np.ndarray, h: np.ndarray, episode: np.ndarray, horizon: int) -> dict:
    """The median of `values` at h = horizon minus that at h = 1, and its 95% interval over resampled episodes (see
    DEFINITIONS["median_rise"]); NaN where a horizon has no finite value."""
    def rise(rows):
        return _stat(np.nanmedian, values[rows][h[rows] == horizon]) - _stat(np.nanmedian, values[rows][h[rows] == 1])

    draws = np.array([rise(rows) for rows in episode_resamples(episode)])
    draws = draws[np.isfinite(draws)]
    interval = np.percentile(draws, [2.5, 97.5]).tolist() if draws.size else [math.nan, math.nan]
    return {"value": rise(np.arange(len(values))), "interval95": interval}


def _read(frames: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    parts = [read_positions(frames[j:j + batch]) for j in range(0, len(frames), batch)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _future_latents(model, episodes, keys, hs, fs, batch) -> list:
    """The encoder's latent of each forecast's true future frame."""
    frames = np.stack([episodes[i].frames[start + fs * h] for (i, start), h in zip(keys, hs)])
    return list(np.concatenate([model.encode(frames[j:j + batch]) for j in range(0, len(frames), batch)]))


def _stat(fn, x: np.ndarray) -> float:
    """fn (np.nanmedian, ...) over a 1-D array; NaN where it holds no finite value."""
    return float(nan_stat(fn, np.asarray(x)[:, None])[0])


def _q75(x: np.ndarray, axis: int) -> np.ndarray:
    return np.nanpercentile(x, 75, axis=axis)


def _examples(episodes, keys, hs, imagined, truth, reconstructed, horizon, fs, stride) -> list[tuple]:
    """Up to EXAMPLES forecasts with every horizon, spread over the episodes: (true row, imagined row), each
    horizon + 1 frames (column 0: the start frame, and its reconstruction)."""
    full = {}
    for j, (key, h) in enumerate(zip(keys, hs)):
        full.setdefault(key, {})[int(h)] = j
    complete = [k for k, v in full.items() if len(v) == horizon and k[1] % stride == 0]  # start reconstructed
    if not complete:
        return []
    picks = [complete[int(i)] for i in np.linspace(0, len(complete) - 1, min(EXAMPLES, len(complete)))]
    rows = []
    for i, start in picks:
        index = full[(i, start)]
        starts_before = sum(len(range(0, len(e.frames), stride)) for e in episodes[:i])
        first_rec = reconstructed[starts_before + start // stride]
        true_row = [episodes[i].frames[start]] + [truth[index[h]] for h in range(1, horizon + 1)]
        imagined_row = [first_rec] + [imagined[index[h]] for h in range(1, horizon + 1)]
        rows.append((f"episode {i}, start frame {start}", true_row, imagined_row))
    return rows


def decoder_figure(result: dict, examples: list):
    """Top: rows of true and imagined frames by horizon (column 0: the start and its reconstruction). Bottom: PSNR
    and the position errors read from the pictures against horizon, with their floors and the still baseline."""
    horizon = len(result["horizons"])
    n_rows = 2 * len(examples)
    fig = new_figure(figsize=(1.25 * (horizon + 1) + 1, 1.3 * n_rows + 3.6))
    grid = fig.add_gridspec(n_rows + 2, horizon + 1, height_ratios=[1] * n_rows + [0.25, 2.6])
    for r, (title, true_row, imagined_row) in enumerate(examples):
        for kind, row in ((0, true_row), (1, imagined_row)):
            for h, frame in enumerate(row):
                ax = fig.add_subplot(grid[2 * r + kind, h])
                ax.imshow(frame, interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                if 2 * r + kind == 0:
                    ax.set_title("start" if h == 0 else f"h={h}", fontsize=9)
                if h == 0:
                    ax.set_ylabel(("true\n" if kind == 0 else "imagined\n") + title.split(",")[0], fontsize=8)
    hs = np.array(result["horizons"])
    bottom = grid[n_rows + 1, :].subgridspec(1, 3, wspace=0.3)
    ax = fig.add_subplot(bottom[0])
    ax.plot(hs, result["imagined_psnr_db_mean"], marker="o", label="imagined vs true frame (mean)")
    ax.plot(hs, result["reconstructed_psnr_db_mean"], color="tab:green", ls=":", label="reconstructed (same frames)")
    ax.set_xlabel("horizon h (model steps)"), ax.set_ylabel("PSNR (dB)"), ax.legend(fontsize=8)
    ax = fig.add_subplot(bottom[1])
    for part, color in (("agent", "tab:blue"), ("block", "tab:gray")):
        ax.plot(hs, result[f"imagined_{part}_px_median"], marker="o", color=color, label=f"{part}, imagined")
        ax.plot(hs, result[f"reconstructed_{part}_px_median"], ls=":", color=color, label=f"{part}, reconstructed")
        ax.plot(hs, result[f"still_{part}_px_median"], ls="--", color=color, alpha=0.6, label=f"{part}, still")
    ax.set_xlabel("horizon h (model steps)"), ax.set_ylabel(f"median centroid error (px of {result['image_size']})")
    ax.set_yscale("symlog", linthresh=0.1)  # sub-pixel forecast errors next to "still"'s tens of pixels
    ax.set_ylim(bottom=0), ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax = fig.add_subplot(bottom[2])
    ax.plot(hs, result["imagined_block_axis_deg_median"], marker="o", color="tab:gray", label="imagined")
    ax.plot(hs, result["reconstructed_block_axis_deg_median"], ls=":", color="tab:gray", label="reconstructed")
    ax.plot(hs, result["still_block_axis_deg_median"], ls="--", color="tab:gray", alpha=0.6, label="still")
    ax.set_xlabel("horizon h (model steps)"), ax.set_ylabel("median block axis error (deg)")
    ax.set_ylim(bottom=0), ax.legend(fontsize=8)
    rec = result["reconstruction"]
    fig.suptitle(f"what the model imagines: reconstruction PSNR {rec['psnr_db_mean']:.1f} dB, SSIM "
                 f"{rec['ssim_mean']:.3f}; decoded forecasts by horizon ({result['episodes']} episodes)")
    return fig


HEADLINE_HORIZONS = (1, 2, 5, 10)


def headline(result: dict) -> dict:
    picks = [h for h in HEADLINE_HORIZONS if h <= len(result["horizons"])]
    rec = result["reconstruction"]
    out = {"reconstruction_psnr_db": rec["psnr_db_mean"], "reconstruction_ssim": rec["ssim_mean"]}
    for key in ("imagined_psnr_db_mean", "imagined_agent_px_median", "imagined_block_px_median",
                "imagined_block_axis_deg_median"):
        out[key] = {f"h{h}": result[key][h - 1] for h in picks}
    for key in ("imagined_agent_px_median_rise", "imagined_block_px_median_rise"):
        out[key] = result[key]
    return out
