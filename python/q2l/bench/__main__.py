"""``python -m q2l.bench {loss,head,metrics,data,speed}``: run one benchmark and print its table."""

import argparse
import sys


def _device_and_compile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--compile",
        dest="compile_backend",
        default="inductor",
        help="torch.compile backend of the compiled columns (inductor, aot_eager, ...; none: skip)",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m q2l.bench", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    loss = sub.add_parser("loss", help="asymmetric and partial-label losses, forward+backward, against plain PyTorch")
    loss.add_argument("--quick", action="store_true", help="small shapes and short timings (for tests)")
    loss.add_argument("--preset", default="all", help="query2label, asl or all")
    _device_and_compile(loss)
    head = sub.add_parser(
        "head",
        help="Query2Label head, then group decoding (ML-Decoder, K up to 9,605), against the official computations",
    )
    head.add_argument("--quick", action="store_true", help="a tiny head (for tests)")
    _device_and_compile(head)
    metrics = sub.add_parser("metrics", help="mAP against scikit-learn, torchmetrics and numpy")
    metrics.add_argument("--quick", action="store_true", help="one small shape (for tests)")
    metrics.add_argument("--device", default="cpu", help="cpu, or cuda for inputs on the GPU")
    dat = sub.add_parser("data", help="the q2l loader against torchvision + PIL with DataLoader workers")
    dat.add_argument("--quick", action="store_true", help="48 small images (for tests)")
    dat.add_argument("--device", default="cpu", help="cpu, or cuda to include the copy to the GPU")
    dat.add_argument("--workers", type=int, default=0, help="threads / worker processes (default: CPUs available)")
    dat.add_argument(
        "--profile", action="store_true", help="per-stage time per image (read, decode, resize, ...) instead"
    )
    speed = sub.add_parser("speed", help="head, loss, mAP and ML-Decoder: each ratio against the official code")
    speed.add_argument("--quick", action="store_true", help="small cases (for tests)")
    speed.add_argument("--busy", action="store_true", help="keep one other process spinning on a core meanwhile")
    speed.add_argument("--compile", dest="compile_backend", default="inductor", help="backend of the compiled rows")
    args = parser.parse_args(argv)
    if args.what == "speed":
        from .speed import main as run_speed

        return run_speed(quick=args.quick, busy=args.busy, compile_backend=args.compile_backend)
    if args.what == "loss":
        from .loss import main as run

        return run(quick=args.quick, preset=args.preset, device=args.device, compile_backend=args.compile_backend)
    if args.what == "head":
        from .head import main as run_head

        return run_head(quick=args.quick, device=args.device, compile_backend=args.compile_backend)
    if args.what == "metrics":
        from .metrics import main as run_metrics

        return run_metrics(quick=args.quick, device=args.device)
    if args.what == "data" and args.profile:
        from .profile import main as run_profile

        return run_profile(quick=args.quick, workers=args.workers)
    if args.what == "data":
        from .data import main as run_data

        return run_data(quick=args.quick, device=args.device, workers=args.workers)
    return 2


if __name__ == "__main__":
    sys.exit(main())
