"""``cdarts-eval --model MODEL [--data SPEC] [--split test|train] [--batch-size N] [--threads N]``: top-1/top-5 and
throughput, reported with the batch size, threads and device it was measured with."""
from __future__ import annotations

import json

from cdarts.cli.common import CommandParser, report_user_errors
from cdarts.errors import ConfigError


def parser(prog: str = "cdarts-eval") -> CommandParser:
    p = CommandParser(prog, "Accuracy and throughput of a trained network.")
    p.add_model()
    p.add_argument("--data", help="dataset: a name (digits), inline YAML ('{type: digits, image_size: 16}') or a "
                                  "YAML config (its data section); default: the data the model was trained on")
    p.add_argument("--split", choices=("test", "train"), default="test", help="which split to measure (default test)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--ema", action="store_true", help="evaluate a run's EMA weights")
    p.add_argument("--device", help="torch device (default: cuda where available, else cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the run's threads setting, else torch's)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_progress()
    return p


def result_line(result: dict) -> str:
    """``MODEL on digits test (360 images): top-1 ... throughput 589 img/s (batch 256, 1 thread, cpu)``."""
    threads = f"{result['threads']} thread{'s' * (result['threads'] != 1)}"
    return (f"{result['model']} on {result['data']['type']} {result['split']} ({result['images']} images): "
            f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  loss {result['loss']:.4f}  "
            f"throughput {result['images_per_s']:.0f} img/s (batch {result['batch_size']}, {threads}, "
            f"{result['device']})")


@report_user_errors
def main(argv: list[str] | None = None, prog: str = "cdarts-eval") -> int:
    args = parser(prog).parse(argv)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    from cdarts.evaluate import evaluate_model

    result = evaluate_model(args.model, args.data, args.split, args.batch_size, args.ema, device=args.device,
                            threads=args.threads, progress=args.progress)
    print(json.dumps(result) if args.json else result_line(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
