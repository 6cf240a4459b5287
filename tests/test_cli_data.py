"""``facewear data convert`` through the real command line (facewear.cli.main) and the console script."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_voc_folder

from facewear.cli import main
from facewear.constants import CLASS_NAMES


def _convert(*args: str) -> int:
    return main(["data", "convert", *args])


def test_convert_voc_to_yolo(tmp_path, capsys):
    src = make_voc_folder(tmp_path, 3)
    out = tmp_path / "yolo"
    rc = _convert("--from", "voc", "--to", "yolo", "--images", str(src.images), "--labels", str(src.labels),
                  "--out", str(out))
    assert rc == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["img_000.txt", "img_001.txt", "img_002.txt"]
    for name, (_w, _h, objects) in src.truth.items():
        lines = (out / Path(name).with_suffix(".txt")).read_text().splitlines()
        assert len(lines) == len(objects)
        for line in lines:
            cls, *xywh = line.split()
            assert 0 <= int(cls) < len(CLASS_NAMES)
            assert all(0.0 < float(v) <= 1.0 for v in xywh)
    assert "converted voc -> yolo" in capsys.readouterr().out


def test_convert_voc_to_coco_with_class_map(tmp_path):
    src = make_voc_folder(tmp_path, 3)
    out = tmp_path / "ann.json"
    rc = _convert("--from", "voc", "--to", "coco", "--images", str(src.images), "--labels", str(src.labels),
                  "--out", str(out), "--class-map", "with_mask=mask,without_mask=face")
    assert rc == 0
    coco = json.loads(out.read_text())
    assert len(coco["images"]) == 3
    n_boxes = sum(1 for _w, _h, objs in src.truth.values() for lab, _ in objs if lab != "mask_weared_incorrect")
    assert len(coco["annotations"]) == n_boxes  # mask_weared_incorrect is unknown under this map


def test_missing_images_folder_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "no_such_images"
    rc = _convert("--from", "voc", "--to", "yolo", "--images", str(missing), "--labels", str(tmp_path),
                  "--out", str(tmp_path / "out"))
    assert rc == 2
    captured = capsys.readouterr()
    assert str(missing) in captured.err
    assert "error" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["bad_class_map", "strict_bad_xml", "malformed_coco"])
def test_bad_inputs_exit_code_2(tmp_path, capsys, kind):
    src = make_voc_folder(tmp_path, 2)
    args = ["--images", str(src.images), "--out", str(tmp_path / "out")]
    if kind == "bad_class_map":
        args += ["--from", "voc", "--to", "yolo", "--labels", str(src.labels), "--class-map", "with_mask"]
        named = "with_mask"
    elif kind == "strict_bad_xml":
        bad = src.labels / "img_001.xml"
        bad.write_text("<annotation>")
        args += ["--from", "voc", "--to", "yolo", "--labels", str(src.labels), "--strict"]
        named = str(bad)
    else:
        bad = tmp_path / "bad.json"
        bad.write_text("{")
        args += ["--from", "coco", "--to", "yolo", "--labels", str(bad)]
        named = str(bad)
    assert _convert(*args) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_lenient_bad_xml_is_skipped_and_reported(tmp_path, capsys):
    src = make_voc_folder(tmp_path, 2)
    (src.labels / "img_001.xml").write_text("<annotation>")
    rc = _convert("--from", "voc", "--to", "yolo", "--images", str(src.images), "--labels", str(src.labels),
                  "--out", str(tmp_path / "out"))
    assert rc == 0
    assert "skipped 1 file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000.txt"]


def test_bad_format_choice_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as ei:
        _convert("--from", "pascal", "--to", "yolo", "--images", "x", "--labels", "y", "--out", "z")
    assert ei.value.code == 2


def test_console_script_help():
    exe = Path(sys.executable).parent / "facewear"
    assert exe.is_file(), f"console script not installed at {exe}"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "data" in res.stdout
    res = subprocess.run([str(exe), "data", "convert", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--class-map" in res.stdout


def test_build_dir_is_isolated(build_dir):
    """conftest points $FACEWEAR_BUILD at a temp folder: no test writes into the repository's build/."""
    from facewear.constants import REPO_ROOT, default_build_dir

    assert default_build_dir() == build_dir.resolve()
    assert REPO_ROOT not in default_build_dir().parents


@pytest.mark.slow
def test_fiftyone_messages_are_printed_once():
    """FiftyOne logs its banner through its own stdout handler; the CLI's root handler must not print it again."""
    import subprocess
    import sys

    code = ("import logging; from facewear.cli import configure_logging; configure_logging(); import fiftyone; "
            "logging.getLogger('fiftyone.core.session.session').info('BANNER-LINE')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (out.stdout + out.stderr).count("BANNER-LINE") == 1


def test_help_texts_have_no_raw_backticks_and_every_option_is_explained(capsys):
    """``facewear --help`` and each verb's help: no Markdown backticks, every option has a help text."""
    import argparse

    from facewear import cli

    p = cli.build_parser()
    texts = [p.format_help()]
    missing = []

    def walk(parser, path):
        for act in parser._actions:
            if isinstance(act, argparse._SubParsersAction):
                for name, sp in act.choices.items():
                    texts.append(sp.format_help())
                    walk(sp, f"{path} {name}")
            elif act.option_strings and act.help in (None, "") and act.dest != "help":
                missing.append(f"{path} {act.option_strings[0]}")
    walk(p, "facewear")
    assert not [t for t in texts if "`" in t]
    assert missing == [], missing
