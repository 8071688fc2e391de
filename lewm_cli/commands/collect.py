"""Collect a PushT dataset (stable-worldmodel HDF5 layout) with our simulator and policies.

Episode i starts from the reset distribution seeded with SEED + i; the policy mix says which share
of episodes the expert, the noisy expert and the random explorer play. The file is written as
OUT.partial and renamed when complete; an existing OUT is kept unless --force is given (checked before
any episode is played)."""
from lewm_cli.arguments import COUNT, SEED, Integer

HELP = "collect a PushT dataset to HDF5"


def add_arguments(p):
    p.add_argument("--out", required=True, help="output .h5 file")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--episodes", type=COUNT, default=100, help="number of episodes")
    p.add_argument("--steps", type=COUNT, default=300, help="env steps per episode (frames = steps + 1)")
    p.add_argument("--image-size", type=Integer(8, 1024), default=128,
                   help="frame size in pixels (224 for the official model)")
    p.add_argument("--pixels", choices=("stored", "drawn"), default="stored",
                   help="stored: the frames in the file (the stable-worldmodel layout); drawn: states and actions "
                        "only, about 1/1000 of the size, the frames drawn from the states when read, at any size "
                        "(--image-size is then the size readers draw at by default)")
    p.add_argument("--seed", type=SEED, default=0, help="episode i uses seed SEED + i")
    p.add_argument("--mix", default="expert=0.3,noisy-expert=0.3,random=0.4",
                   help="policy shares, e.g. expert=1 or expert=0.3,noisy-expert=0.3,random=0.4; a noisy expert "
                        "may name its action noise: noisy-expert:0.1=0.5,noisy-expert:0.4=0.5 (default 0.3)")
    p.add_argument("--workers", type=Integer(1, 256), default=1,
                   help="processes playing episodes in parallel (the file is the same for any number)")


def run(args):
    from lewm_cli.output_path import check_output_file
    from lewm_errors import UserError
    from scenes.collect import collect, parse_mix

    try:
        mix = parse_mix(args.mix)
    except UserError as err:
        raise UserError(f"--mix {args.mix}: {err}") from None
    check_output_file(args.out, "--out", force=args.force)
    result = collect(args.out, args.episodes, args.steps, args.image_size, args.seed, mix,
                     workers=args.workers, drawn=args.pixels == "drawn")
    print(f"wrote {result['frames']} frames in {result['episodes']} episodes to {result['path']} "
          f"({result['frames_per_second']:.0f} frames/s, {result['workers']} worker(s))")
