"""One option name per meaning across the verbs; deprecated spellings stay accepted but hidden."""
import argparse

import pytest

from facewear.cli import VERBS, build_parser

DEPRECATED = {"--max-samples", "--max-val-images", "--models"}  # spelled --max-images / --model now


def leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(verb path, parser) of every leaf command: ``("train", "cls")``, ``("val",)``..."""
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, p
        return
    for a in subs:
        for name, sp in a.choices.items():
            yield from leaves(sp, (*path, name))


ALL = dict(leaves(build_parser(None)))


def visible(p: argparse.ArgumentParser) -> set[str]:
    return {o for a in p._actions if a.help is not argparse.SUPPRESS for o in a.option_strings}


def test_every_verb_builds():
    assert {path[0] for path in ALL} == set(VERBS)
    for path, p in ALL.items():
        assert "--help" in visible(p), path


@pytest.mark.parametrize("path", sorted(ALL), ids=" ".join)
def test_no_deprecated_spelling_is_shown(path):
    assert not visible(ALL[path]) & DEPRECATED


def test_deprecated_spellings_still_parse():
    cases = [
        (["data", "inspect", "--max-samples", "3"], "max_images", 3),
        (["inspect", "data", "--max-samples", "3"], "max_images", 3),
        (["train", "frcnn", "--max-val-images", "40"], "max_val_images", 40),
        (["train", "frcnn", "--max-images", "40"], "max_val_images", 40),
        (["train", "cls", "--data", "crops"], "data", "crops"),
        (["train", "cls", "--crops", "crops"], "data", "crops"),
        (["bench", "--suite", "card", "--models", "a.pt", "b.onnx"], "models", ["a.pt", "b.onnx"]),
        (["bench", "--suite", "card", "--model", "a.pt", "--model", "b.onnx"], "models", ["a.pt", "b.onnx"]),
    ]
    for argv, dest, want in cases:
        assert getattr(build_parser(argv[0]).parse_args(argv), dest) == want, argv


def test_multi_model_verbs_take_model():
    """Verbs that compare several models spell it --model (a list or a repeat), never --models."""
    for path in (("bench",), ("inspect", "preds")):
        assert "--model" in visible(ALL[path])


def test_project_defaults_are_the_repository_runs_folder():
    from facewear.constants import RUNS_DIR

    for fam in ("yolo", "frcnn", "cls"):
        a = next(a for a in ALL[("train", fam)]._actions if "--project" in a.option_strings)
        assert a.default == str(RUNS_DIR / fam)


def test_bench_detector_suite_takes_one_model():
    from detection import bench

    with pytest.raises(ValueError, match="one model"):
        bench.run(models=["a.pt", "b.pt"], suite="detector")


@pytest.mark.parametrize("path,module", [(("bench",), "detection.bench"),
                                         (("inspect", "preds"), "detection.fiftyone_preds"),
                                         (("data", "inspect"), "facewear.data.fiftyone_split")])
def test_defaults_written_once_in_run(path, module):
    """These verbs leave out options not given (argparse.SUPPRESS): run()'s signature holds every default."""
    import importlib
    import inspect

    params = inspect.signature(importlib.import_module(module).run).parameters
    for a in ALL[path]._actions:
        if not a.option_strings or a.dest == "help" or a.required:
            continue
        assert a.default is argparse.SUPPRESS, (path, a.option_strings)
        assert a.dest in params and params[a.dest].default is not inspect.Parameter.empty, (path, a.dest)


def test_bench_without_options_runs_with_run_defaults(monkeypatch):
    from detection import bench
    from facewear import cli

    seen = {}
    monkeypatch.setattr(bench, "run", lambda **kw: seen.update(kw) or 0)
    assert cli.main(["bench", "--iters", "3"]) == 0
    assert seen == {"iters": 3}
