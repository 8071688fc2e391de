"""Export a model folder to ONNX: FOLDER/encoder.onnx (uint8 frames -> z), FOLDER/predictor.onnx (latent window +
raw action blocks -> next latent) and FOLDER/rollout.onnx (the planner's rollout: a latent and 5 action blocks -> the
5 latents after them, one call), with the input normalisations inside the graphs; the predictor and the rollout share
their weights in FOLDER/predictor.weights. The files are checked against torch (max |difference| <= 1e-4 for
T = 1..history and the rollout, batch 1 and 3) and removed if they disagree; config.json gets an "onnx" section. A
folder with a pixel decoder (`lewm train-decoder`) also gets decoder.onnx (latents -> frames), checked the same way.
--int8 also writes dynamically quantised copies for the CPU, --fp16 half-precision copies for the GPU.
With --preset NAME --random-weights --out DIR it first makes a random-weight model folder of that preset
(for benchmarks and parity checks)."""
from __future__ import annotations

import argparse

from lewm.bundled import BUNDLED_MODEL
from lewm.config import PRESETS
from lewm_cli.arguments import MODEL, Integer

HELP = "export a model folder to ONNX (encoder.onnx, predictor.onnx, rollout.onnx), verified against torch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=MODEL, default=None,
                        help=f"model folder to export, written into it (default: the bundled {BUNDLED_MODEL.name})")
    parser.add_argument("--opset", type=Integer(18, 21), default=18, help="ONNX opset")
    parser.add_argument("--int8", action="store_true",
                        help="also write encoder.int8.onnx / predictor.int8.onnx (dynamic int8 for the CPU; where a "
                        "graph's agreement with fp32 falls below 0.999, its most sensitive weight products stay "
                        "fp32, at most 4, and the output names them)")
    parser.add_argument("--fp16", action="store_true",
                        help="also write encoder.fp16.onnx / predictor.fp16.onnx (needs onnxconverter-common)")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs torch check")
    parser.add_argument("--preset", default=None, choices=tuple(PRESETS),
                        help="with --random-weights: the preset's sizes")
    parser.add_argument("--random-weights", action="store_true",
                        help="make a random-weight model folder of --preset at --out, then export it")
    parser.add_argument("--out", default=None, help="with --random-weights: the model folder to make")
    parser.add_argument("--force", action="store_true",
                        help="export a model folder that already holds ONNX files again (they are replaced); with "
                             "--random-weights: write into --out even if it already holds files")


def run(args: argparse.Namespace) -> int:
    from lewm_errors import UserError

    if args.random_weights:
        if args.model or not (args.preset and args.out):
            raise UserError("--random-weights makes a new folder: give --preset NAME and --out DIR (not --model)")
    elif args.preset or args.out:
        raise UserError("--preset and --out go with --random-weights")
    else:
        args.model = args.model or BUNDLED_MODEL
        if (args.model / "encoder.onnx").exists() and not args.force:
            raise UserError(f"{args.model} already holds ONNX files; pass --force to export it again (its ONNX files, "
                            "int8 and fp16 copies included, are replaced)")

    if args.fp16:
        from export.quantize import fp16_available
        fp16_available(raise_if_not=True)  # before spending time on the export
    from export.decoder_onnx import reduce_decoder
    from export.onnx_export import ParityError, export_model_folder, make_random_model_folder
    from lewm.decoder.model import has_decoder

    folder = args.model
    if args.random_weights:
        from lewm_cli.output_path import check_output_folder

        check_output_folder(args.out, "--out", force=args.force)
        folder = make_random_model_folder(args.preset, args.out)
        print(f"made a random-weight {args.preset} model folder at {folder}")
    try:
        section = export_model_folder(folder, opset=args.opset, verify=not args.no_verify, int8=args.int8)
    except ParityError as err:
        print(f"lewm export: FAILED: {err}")
        return 1
    print(f"wrote {folder}/{section['encoder']}, {folder}/{section['predictor']} and {folder}/"
          f"{section['rollout']['file']} (opset {section['opset']}, {section['exporter']})")
    check = section.get("verification")
    if check:
        by_t = ", ".join(f"T={t}: {v:.2e}" for t, v in check["predictor_max_abs_diff_by_T"].items())
        rollout = f", rollout {check['rollout_max_abs_diff']:.2e}" if "rollout_max_abs_diff" in check else ""
        print(f"ONNX Runtime vs torch, max |diff| (batch 1 and 3): encoder {check['encoder_max_abs_diff']:.2e}, "
              f"predictor {check['predictor_max_abs_diff']:.2e} ({by_t}){rollout}; tolerance {check['tolerance']:g}")
    if args.fp16:
        from export.quantize import convert_fp16_model_folder
        section = convert_fp16_model_folder(folder)
        if has_decoder(folder):
            reduce_decoder(folder, "fp16")
    for precision in ("int8", "fp16"):
        if getattr(args, precision):
            g = section[precision]["agreement_with_fp32"]
            print(f"wrote {section[precision]['encoder']} and {section[precision]['predictor']}; {precision} vs fp32 "
                  f"cosine on {g['measured_on']}: mean {g['mean_cos']:.5f}, min {g['min_cos']:.5f} "
                  f"(target {g['target']}){_kept_note(section[precision])}")
    if has_decoder(folder):
        _print_decoder(folder)
    return 0


def _print_decoder(folder) -> None:
    from lewm.config import ModelConfig

    entry = ModelConfig.load(f"{folder}/config.json").extra["decoder"].get("onnx", {})
    check = entry.get("verification")
    parity = f"; ONNX Runtime vs torch max |diff| {check['max_abs_diff']:.2e} (tolerance {check['tolerance']:g})" \
        if check else ""
    print(f"wrote {folder}/{entry['fp32']} (the pixel decoder){parity}")
    for precision in ("int8", "fp16"):
        if precision in entry:
            g = entry[precision]["agreement_with_fp32"]
            print(f"wrote {entry[precision]['file']}; {precision} vs fp32 decoded frames: PSNR mean "
                  f"{g['psnr_db_mean']:.1f} dB, min {g['psnr_db_min']:.1f} dB, "
                  f"max |diff| {g['max_abs_diff_uint8']}/255")


def _kept_note(entry: dict) -> str:
    kept = entry.get("kept_fp32", {})
    named = [f"{graph} {', '.join(kept[graph])}" for graph in ("encoder", "predictor") if kept.get(graph)]
    return f"; weight products kept in fp32: {'; '.join(named)}" if named else ""
