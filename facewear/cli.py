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
    "data": ("facewear.data.cli", "dataset tools: convert, build, stats, inspect"),
    "demo": ("facewear.demo", "run the main job on the project's own demo media (no ../shared needed)"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facewear", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, (mod, help_) in VERBS.items():
        sp = sub.add_parser(verb, help=help_, description=help_)
        importlib.import_module(mod).add_args(sp)
        sp.set_defaults(_module=mod)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
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
