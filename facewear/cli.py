"""The single ``facewear <verb>`` command line.

Each verb lives in its own module exposing ``add_args(parser)`` and
``run(**kwargs)``; the CLI only parses and calls ``run`` with the same
keyword arguments a Python user would pass (as yolov5's ``parse_opt()`` /
``run()``).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# verb -> (module, help). Modules are imported lazily so `facewear --help` is fast.
VERBS: dict[str, tuple[str, str]] = {
    "data": ("facewear.data.cli", "dataset tools: convert, build, review, stats, crops, inspect"),
    "demo": ("detection.demo", "run the main job on the project's own demo media (no ../shared needed)"),
    "train": ("detection.train", "train a model: yolo, frcnn or cls (crop classifier)"),
    "val": ("detection.val", "evaluate a model (.pt/.onnx) on a dataset spec: mAP, per-class AP, P/R, plots"),
    "predict": ("detection.predict", "detect and crop faces in images, folders, videos, streams and webcams"),
    "export": ("detection.export", "export a .pt to ONNX fp32/fp16/int8, check agreement, time it"),
    "bench": ("detection.bench", "accuracy, size and latency of a model and its ONNX variants on this machine"),
    "inspect": ("facewear.inspect_cli", "FiftyOne: ground truth and models' predictions, evaluated, worst first"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser. Only the chosen verb's module is imported (``None``: all of them)."""
    p = argparse.ArgumentParser(prog="facewear", description=__doc__.splitlines()[0].replace("``", ""),
                                epilog="Run facewear VERB --help for a verb's options. Without an activated venv, "
                                       "call .venv/bin/facewear.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (mod, help_) in VERBS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if verb is None or name == verb:
            importlib.import_module(mod).add_args(sp)
        sp.set_defaults(_module=mod)
    return p


def configure_logging(verbose: bool = False) -> None:
    """facewear's log format on the root logger. FiftyOne prints its messages (the welcome banner, "App
    launched") through a stdout handler of its own, so its logger must not propagate to the root one as well:
    each message would be printed twice."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("fiftyone").propagate = False


def main(argv: list[str] | None = None) -> int:
    """``facewear VERB ...``: parse, call the verb's ``run(**kwargs)``; exit 2 with one line on a bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(verb if verb in VERBS else "").parse_args(argv)
    configure_logging(args.verbose)
    kwargs = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("verb", "verbose")}
    mod = importlib.import_module(args._module)
    try:
        result = mod.run(**kwargs)
    except (FileNotFoundError, ValueError) as e:  # our errors name the file and the problem
        print(f"facewear {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facewear {args.verb}: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())


def add_subcommands(p: argparse.ArgumentParser, table: dict[str, tuple[str, str]], dest: str, metavar: str) -> None:
    """Nested sub-commands (``facewear data build``, ``facewear train yolo``): one module per entry."""
    sub = p.add_subparsers(dest=dest, required=True, metavar=metavar)
    for name, (mod, help_) in table.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(mod).add_args(sp)


def dispatch(table: dict[str, tuple[str, str]], key: str, /, **kwargs):
    """Call ``<module of name>.run(**kwargs)``."""
    return importlib.import_module(table[key][0]).run(**kwargs)
