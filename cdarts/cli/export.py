"""``cdarts-export --model RUN_DIR|CHECKPOINT --output DIR [--ema] [--force] [--push-to-hub REPO [--private]]``: a
folder timm loads with ``local-dir:DIR`` (and, pushed, with ``hf-hub:REPO``). The old ``cdarts-export RUN_DIR --out
DIR`` still works, with a deprecation warning."""
from __future__ import annotations

import argparse

from cdarts.cli.common import CommandParser, deprecated, report_user_errors


def parser(prog: str = "cdarts-export") -> CommandParser:
    p = CommandParser(prog, "Export a retrained network for timm.")
    p.add_model(required=False, help="the retrained network: a run folder (its best checkpoint), a checkpoint folder "
                                     "or a weights-only .pt")
    p.add_argument("source", nargs="?", help=argparse.SUPPRESS)  # deprecated: the positional form of --model
    p.add_output("folder to write model.safetensors, config.json and README.md to (a symlink: to its target)",
                 required=True, old="--out")
    p.add_argument("--ema", action="store_true", help="export the EMA weights instead of the raw ones")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty --output folder")
    p.add_argument("--latency", metavar="TABLE", help="add the latency predicted by a cdarts-profile table made for "
                   "this network to config.json and the README")
    p.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder to this Hugging Face Hub model "
                                                         "repository, OWNER/NAME (created if missing; needs a token: "
                                                         "`hf auth login` or HF_TOKEN)")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    return p


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-export") -> int:
    p = parser(prog)
    args = p.parse(argv)
    if args.source is not None:
        if args.model is not None:
            p.error(f"name the model once: --model {args.model} (drop {args.source!r})")
        deprecated("the positional model argument", f"--model {args.source}")
    model = args.model or args.source
    if model is None:
        p.error("the following arguments are required: --model")
    if args.private and args.push_to_hub is None:
        p.error("--private applies to --push-to-hub REPO only")
    from cdarts.models.export import export
    from cdarts.models.hub import check_repo_id, push_folder

    if args.push_to_hub is not None:
        check_repo_id(args.push_to_hub)
    result = export(model, args.output, ema=args.ema, force=args.force, latency=args.latency,
                    hub_repo=args.push_to_hub)
    metrics = result.config["cdarts"]["metrics"]
    prefix = "ema_" if args.ema else ""
    accuracy = ", ".join(f"{split} top-1 {metrics[f'{prefix}{split}_top1']:.2f}%" for split in ("val", "test")
                         if isinstance(metrics.get(f"{prefix}{split}_top1"), (int, float)))
    print(f"exported {result.config['architecture']} ({result.params / 1e6:.3f}M params, {result.macs / 1e6:.2f}M "
          f"MACs{', ' + accuracy if accuracy else ''}) to {result.folder}\n"
          f"load: import cdarts, timm; timm.create_model('local-dir:{result.folder}', pretrained=True)", flush=True)
    if args.push_to_hub is not None:
        url = push_folder(result.folder, args.push_to_hub, private=args.private)
        print(f"pushed to {url}\nload: import cdarts, timm; timm.create_model('hf-hub:{args.push_to_hub}', "
              "pretrained=True)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
