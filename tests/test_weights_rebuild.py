"""`facewear export --rebuild`: variants that are not committed are remade from the committed file and checked
against weights/manifest.json; what cannot be made (int8 without calibration data) is skipped with the reason."""
from __future__ import annotations

import hashlib
import json

import pytest
from conftest import make_cls_ckpt


def _entry(file: str, **kw) -> dict:
    return {"name": file, "file": file, "sha256": "0" * 64, "bytes": 0, "task": "classify", **kw}


@pytest.mark.slow
def test_rebuild_missing_variants_and_checks(tmp_path, build_dir):
    from detection.export import rebuild_variants as rebuild
    from detection.manifest import rebuildable, verify
    from facewear.cli import main

    make_cls_ckpt(tmp_path / "m.pt")
    needs = "the crops built from ../shared/data"
    man = {"models": [
        _entry("m.pt", committed=True),
        _entry("m-fp16.onnx", committed=False,
               rebuild={"from": "m.pt", "format": "onnx-fp16", "check": "agreement",
                        "agreement": {"metric": "top1_agreement", "value": 100.0, "tolerance": 2.0}}),
        _entry("m-int8.onnx", committed=False,
               rebuild={"from": "m.pt", "format": "onnx-int8", "check": "agreement", "needs": needs,
                        "agreement": {"metric": "top1_agreement", "value": 90.0, "tolerance": 5.0}}),
    ]}
    man["models"][0]["sha256"] = hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    assert [m["file"] for m in rebuildable(tmp_path)] == ["m-fp16.onnx", "m-int8.onnx"]
    assert verify(tmp_path) == []  # rebuilt variants may be absent; the committed file matches

    res = rebuild(tmp_path)
    assert (tmp_path / "m-fp16.onnx").is_file() and not (tmp_path / "m-int8.onnx").exists()
    (c,) = res["checked"]
    assert c["file"] == "m-fp16.onnx" and c["ok"] and c["rebuilt"] >= 98.0
    assert "calibration" in res["skipped"]["m-int8.onnx"] and needs in res["skipped"]["m-int8.onnx"]
    assert rebuildable(tmp_path) == [rebuildable(tmp_path, missing_only=False)[1]]  # only int8 is left to make

    # a rebuilt file that misses its recorded agreement fails the check (and the CLI says so with exit 1)
    man["models"][1]["rebuild"]["agreement"]["value"] = 101.0
    man["models"][1]["rebuild"]["agreement"]["tolerance"] = 0.0
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    rc = main(["export", "--rebuild", "--force", "--out-dir", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert rc == 1 and json.loads((tmp_path / "r.json").read_text())["ok"] is False


def test_committed_files_checked_by_sha(tmp_path):
    from detection.manifest import check_rebuilt, verify

    f = tmp_path / "x.pt"
    f.write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [
        _entry("x.pt", committed=True, sha256=sha), _entry("gone.pt", committed=True)]}))
    assert verify(tmp_path) == ["gone.pt"]  # a committed file that is missing is an error
    e = _entry("x.pt", sha256=sha, rebuild={"from": "y.pt", "format": "torch-fp16", "check": "sha256"})
    assert check_rebuilt(e, f, None)["ok"]
    f.write_bytes(b"abd")
    assert not check_rebuilt(e, f, None)["ok"]


def test_variant_of_an_earlier_release_is_stale(tmp_path):
    """A variant left from an earlier release must not pass as present: it is rebuilt (the card rebuilt nothing and
    measured the old 320 px int8 ONNX after the 416 px re-release)."""
    from detection.manifest import rebuildable, stale, stamp

    src, var, same = tmp_path / "m.pt", tmp_path / "m-int8.onnx", tmp_path / "m-fp16.onnx"
    src.write_bytes(b"release 1")
    var.write_bytes(b"int8 of release 1")
    same.write_bytes(b"fp16 as released")
    rec = {"from": "m.pt", "format": "onnx-int8", "check": "agreement",
           "agreement": {"metric": "top1_agreement", "value": 90.0, "tolerance": 5.0}}
    man = {"models": [
        _entry("m.pt", committed=True, sha256=hashlib.sha256(b"release 1").hexdigest()),
        _entry("m-int8.onnx", committed=False, rebuild=rec),
        _entry("m-fp16.onnx", committed=False, rebuild=dict(rec, format="onnx-fp16"),
               sha256=hashlib.sha256(b"fp16 as released").hexdigest()),
    ]}
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    # neither the released file (sha differs) nor recorded as rebuilt from the current m.pt
    assert list(stale(tmp_path)) == ["m-int8.onnx"]
    why: dict[str, str] = {}
    assert [m["file"] for m in rebuildable(tmp_path, reasons=why)] == ["m-int8.onnx"]
    assert why == stale(tmp_path)  # the reasons of the same pass, for printing without hashing again
    stamp(tmp_path, var, src)  # what `facewear export --rebuild` records after a passing check
    assert stale(tmp_path) == {} and rebuildable(tmp_path) == []
    src.write_bytes(b"release 2")  # a re-release of the source: the rebuilt variant is now stale
    assert "earlier release" in stale(tmp_path)["m-int8.onnx"]
    var.write_bytes(b"edited by hand")  # a file changed after its rebuild is not the one recorded either
    src.write_bytes(b"release 1")
    assert list(stale(tmp_path)) == ["m-int8.onnx"]
    (tmp_path / ".rebuilt.json").write_text("{not json")  # an unreadable record: stale, not a crash
    assert list(stale(tmp_path)) == ["m-int8.onnx"]
