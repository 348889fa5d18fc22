"""``cdarts-eval --model local-dir:DIR|RUN_DIR|CHECKPOINT [--data SPEC] [--split test|train]``: top-1/top-5, speed."""
from __future__ import annotations

import argparse
import json

from cdarts.cli.common import report_user_errors
from cdarts.errors import ConfigError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cdarts-eval", description="Accuracy and throughput of a trained network.")
    p.add_argument("--model", required=True, help="local-dir:EXPORT_DIR, a retrain run folder or a checkpoint")
    p.add_argument("--data", help="dataset: a name (digits), inline YAML ('{type: digits, image_size: 16}') or a "
                                  "YAML config (its data section); default: the data the model was trained on")
    p.add_argument("--split", choices=("test", "train"), default="test", help="which split to measure (default test)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--ema", action="store_true", help="evaluate a run's EMA weights")
    p.add_argument("--device", help="torch device (default: cuda where available, else cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    import torch

    from cdarts.evaluate import evaluate_model

    if args.threads:
        torch.set_num_threads(args.threads)
    result = evaluate_model(args.model, args.data, args.split, args.batch_size, args.ema, device=args.device)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model} on {result['data']['type']} {result['split']} ({result['images']} images): "
              f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  loss {result['loss']:.4f}  "
              f"throughput {result['images_per_s']:.0f} img/s (batch {result['batch_size']}, {result['device']}"
              + (f", {torch.get_num_threads()} threads)" if result["device"] == "cpu" else ")"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
