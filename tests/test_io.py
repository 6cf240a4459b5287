"""Image reading (every PIL mode -> HxWx3 uint8, EXIF orientation) and the atomic writers (facewear.io)."""
from __future__ import annotations

import os
import re
import stat

import cv2
import numpy as np
import pytest
from conftest import synth_image, write_synth_image
from PIL import Image

from facewear.io import (
    ImageReadError,
    atomic_dir,
    atomic_path,
    image_size,
    list_images,
    read_image,
    write_image,
    write_json,
    write_text,
)


def _check(arr: np.ndarray, h: int, w: int) -> None:
    assert arr.dtype == np.uint8
    assert arr.shape == (h, w, 3)
    assert arr.flags["C_CONTIGUOUS"]


# --- image modes -------------------------------------------------------------------------
def test_16bit_grayscale_png(tmp_path):
    ramp = np.linspace(0, 65535, 50 * 30).reshape(30, 50).astype(np.uint16)
    ramp[0, 0], ramp[0, 1], ramp[0, 2] = 0, 65535, 32896  # 32896 = 128.5 * 256
    p = tmp_path / "g16.png"
    assert cv2.imwrite(str(p), ramp)
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    arr = read_image(p)
    _check(arr, 30, 50)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    assert arr[0, 0, 0] == 0 and arr[0, 1, 0] == 255 and abs(int(arr[0, 2, 0]) - 128) <= 1
    # scaled by 65535, not truncated: close to cv2's own 16->8 bit conversion
    ref = (ramp.astype(np.float64) / 257.0).round()
    assert np.abs(arr[..., 0].astype(int) - ref).max() <= 1
    assert image_size(p) == (50, 30)


def test_16bit_dark_png_is_not_stretched(tmp_path):
    """A 16-bit image whose values all lie below 256 is nearly black, not full range."""
    dark = np.full((8, 8), 200, np.uint16)
    p = tmp_path / "dark16.png"
    cv2.imwrite(str(p), dark)
    assert read_image(p).max() <= 1


def _paletted(tmp_path, transparency: bool):
    idx = np.zeros((10, 20), np.uint8)
    idx[:, 10:] = 1  # right half uses palette entry 1
    im = Image.fromarray(idx, mode="P")
    im.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)  # 0 = red, 1 = blue
    p = tmp_path / ("pal_t.png" if transparency else "pal.png")
    if transparency:
        im.save(p, transparency=1)  # palette entry 1 fully transparent
    else:
        im.save(p)
    with Image.open(p) as chk:
        assert chk.mode == "P" and (("transparency" in chk.info) == transparency)
    return p


def test_paletted_png(tmp_path):
    arr = read_image(_paletted(tmp_path, transparency=False))
    _check(arr, 10, 20)
    assert tuple(arr[5, 2]) == (0, 0, 255)  # red, in BGR
    assert tuple(arr[5, 15]) == (255, 0, 0)  # blue, in BGR
    rgb = read_image(_paletted(tmp_path, transparency=False), rgb=True)
    assert tuple(rgb[5, 2]) == (255, 0, 0)


def test_paletted_png_with_transparency(tmp_path):
    arr = read_image(_paletted(tmp_path, transparency=True))
    _check(arr, 10, 20)
    assert tuple(arr[5, 2]) == (0, 0, 255)  # opaque red stays red
    assert tuple(arr[5, 15]) == (255, 255, 255)  # transparent -> white background


def test_rgba_png(tmp_path):
    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[..., 1] = 200  # green
    rgba[:, :8, 3] = 255  # left opaque
    rgba[:, 8:, 3] = 0  # right transparent
    p = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(p)
    arr = read_image(p)
    _check(arr, 12, 16)
    assert tuple(arr[0, 0]) == (0, 200, 0)
    assert tuple(arr[0, 15]) == (255, 255, 255)


def test_grayscale_jpeg(tmp_path):
    g = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (24, 1))
    p = tmp_path / "g.jpg"
    Image.fromarray(g, mode="L").save(p, quality=95)
    arr = read_image(p)
    _check(arr, 24, 32)
    assert (arr[..., 0] == arr[..., 2]).all()
    assert np.abs(arr[..., 0].astype(int) - g).max() <= 8


def test_exif_orientation_6(tmp_path):
    """Orientation 6 = rotate 90 degrees clockwise to display: a 40x20 file reads as 20x40."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :] = (0, 0, 255)  # RGB blue
    stored[:10, :10] = (255, 0, 0)  # red square at the stored top-left
    im = Image.fromarray(stored, mode="RGB")
    exif = im.getexif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=95)

    assert image_size(p) == (20, 40)  # (width, height) after rotation
    arr = read_image(p, rgb=True)
    _check(arr, 40, 20)
    h, w = arr.shape[:2]
    assert (w, h) == image_size(p)
    # rotating clockwise moves the stored top-left corner to the top-right
    assert arr[3, w - 4, 0] > 200 and arr[3, w - 4, 2] < 60
    assert arr[3, 3, 0] < 60 and arr[3, 3, 2] > 200


def test_plain_jpeg_and_png_bgr(tmp_path):
    img = synth_image(33, 17, seed=2)
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), img)
    np.testing.assert_array_equal(read_image(p), img)
    np.testing.assert_array_equal(read_image(p, rgb=True), img[..., ::-1])
    assert image_size(p) == (33, 17)


# --- bad files -----------------------------------------------------------------------------
def test_truncated_file_raises_naming_file(tmp_path):
    p = write_synth_image(tmp_path / "full.jpg", 200, 150)
    data = p.read_bytes()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=re.escape(str(bad))):
        read_image(bad)
    png = tmp_path / "full.png"
    cv2.imwrite(str(png), synth_image(200, 150))
    badpng = tmp_path / "truncated.png"
    badpng.write_bytes(png.read_bytes()[:300])
    with pytest.raises(ImageReadError, match=re.escape(str(badpng))):
        read_image(badpng)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0garbage"])
def test_corrupt_file_raises_naming_file(tmp_path, content):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    with pytest.raises(ImageReadError, match=re.escape(str(bad))):
        read_image(bad)


def test_corrupt_file_image_size_names_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(ImageReadError, match=re.escape(str(bad))):
        image_size(bad)


def test_missing_file_raises_naming_file(tmp_path):
    with pytest.raises(ImageReadError, match=re.escape(str(tmp_path / "none.jpg"))):
        read_image(tmp_path / "none.jpg")
    with pytest.raises(ImageReadError, match=re.escape(str(tmp_path / "none.jpg"))):
        image_size(tmp_path / "none.jpg")


def test_list_images(tmp_path):
    write_synth_image(tmp_path / "b.jpg")
    write_synth_image(tmp_path / "sub" / "a.PNG")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["b.jpg", "sub/a.PNG"]


# --- atomic writers -----------------------------------------------------------------------
def test_write_text_leaves_no_temp_files(tmp_path):
    dst = tmp_path / "out" / "a.txt"
    write_text(dst, "one")
    write_text(dst, "two")
    write_json(tmp_path / "out" / "b.json", {"k": [1, 2]})
    write_image(tmp_path / "out" / "c.png", synth_image(8, 8))
    assert sorted(os.listdir(tmp_path / "out")) == ["a.txt", "b.json", "c.png"]
    assert dst.read_text() == "two"


def test_written_files_get_normal_permissions(tmp_path):
    """Atomic writers must not leave mkstemp's 0600 / mkdtemp's 0700 on the results."""
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_path_failure_leaves_nothing(tmp_path):
    dst = tmp_path / "a.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(dst) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # an existing file survives a failed rewrite
    write_text(dst, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(dst) as tmp:
            tmp.write_text("new")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == ["a.txt"] and dst.read_text() == "old"


def test_atomic_dir_failure_leaves_no_dst(tmp_path):
    dst = tmp_path / "built"
    with pytest.raises(RuntimeError):
        with atomic_dir(dst) as d:
            (d / "half.txt").write_text("x")
            raise RuntimeError("interrupted")
    assert not dst.exists()
    assert os.listdir(tmp_path) == []  # no .partial-* left either


def test_atomic_dir_failure_keeps_existing_dst(tmp_path):
    dst = tmp_path / "built"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(dst) as d:
            (d / "new.txt").write_text("new")
            raise KeyboardInterrupt
    assert sorted(os.listdir(dst)) == ["old.txt"]
    assert os.listdir(tmp_path) == ["built"]


def test_atomic_dir_replaces_existing_dst(tmp_path):
    dst = tmp_path / "built"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    with atomic_dir(dst) as d:
        assert d != dst and not (d / "old.txt").exists()
        (d / "sub").mkdir()
        (d / "sub" / "new.txt").write_text("new")
        assert (dst / "old.txt").exists()  # the old build stays until the new one is complete
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*")) == ["sub", "sub/new.txt"]
    assert os.listdir(tmp_path) == ["built"]  # no .partial-* or .old-* left


def test_corrupt_file_after_ultralytics_import_still_clean(tmp_path):
    """ultralytics patches PIL.Image.open (HEIF plugin lookup); a corrupt file must still give ImageReadError."""
    import ultralytics.utils.patches  # noqa: F401  (applies the patch)

    from facewear.io import ImageReadError, image_size, read_image

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="bad.jpg"):
        image_size(bad)


def test_write_marked_block_replaces_only_between_markers(tmp_path):
    from facewear.io import write_marked_block

    f = tmp_path / "README.md"
    f.write_text("top\n<!-- t:begin -->\nold\n<!-- t:end -->\nbottom\n")
    assert write_marked_block(f, "t", "new\n", "me")
    assert f.read_text() == ("top\n<!-- t:begin -->\n<!-- written by me; do not edit by hand -->\nnew\n"
                             "<!-- t:end -->\nbottom\n")
    assert write_marked_block(f, "t", "again\n", "me")  # markers survive a rewrite
    assert "again\n<!-- t:end -->" in f.read_text() and "new" not in f.read_text()
    before = f.read_text()
    assert write_marked_block(f, "other", "x\n", "me") is False and f.read_text() == before
    assert write_marked_block(tmp_path / "missing.md", "t", "x\n", "me") is False
    assert not (tmp_path / "missing.md").exists()


# --- never write over an input; images above Pillow's bomb limit are refused by name ---------------
def test_check_not_inputs_names_output_and_input(tmp_path):
    from facewear.io import OverwriteError, check_not_inputs

    a = tmp_path / "a.jpg"
    a.write_bytes(b"x")
    check_not_inputs([tmp_path / "out" / "a.jpg"], [a], "--save")  # elsewhere: fine
    with pytest.raises(OverwriteError, match=r"a\.jpg: --save would overwrite the input"):
        check_not_inputs([tmp_path / "sub" / ".." / "a.jpg"], [a], "--save")
    link = tmp_path / "link.jpg"
    link.symlink_to(a)
    with pytest.raises(OverwriteError):
        check_not_inputs([link], [a], "--save")


def test_check_dir_apart(tmp_path):
    from facewear.io import OverwriteError, check_dir_apart

    data = tmp_path / "data"
    data.mkdir()
    check_dir_apart(tmp_path / "build" / "facewear4", [data])
    for bad in (data, data / "facewear4", tmp_path):
        with pytest.raises(OverwriteError, match="overlaps the input"):
            check_dir_apart(bad, [data])


def test_image_above_the_bomb_limit_is_refused_naming_the_file(tmp_path, monkeypatch):
    from PIL import Image

    p = tmp_path / "big.png"
    cv2.imwrite(str(p), np.zeros((100, 200, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15_000)  # between 1x and 2x: only a Pillow warning
    for fn in (read_image, image_size):
        with pytest.raises(ImageReadError, match=re.escape(str(p)) + r".*200x100 = 20000 pixels.*limit of 15000"):
            fn(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)  # > 2x the limit: Pillow's own DecompressionBombError
    with pytest.raises(ImageReadError, match=re.escape(str(p))):
        read_image(p)


def test_one_pixel_image_reads(tmp_path):
    p = tmp_path / "dot.png"
    cv2.imwrite(str(p), np.full((1, 1, 3), 7, np.uint8))
    assert read_image(p).shape == (1, 1, 3) and image_size(p) == (1, 1)


def test_portable_paths_leave_no_machine_path(tmp_path, monkeypatch):
    from facewear.constants import DATA_ROOT_ENV, REPO_ROOT
    from facewear.io import portable_path, portable_paths

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv(DATA_ROOT_ENV, str(data))
    assert portable_path(REPO_ROOT / "weights" / "m.pt") == "weights/m.pt"
    assert portable_path(data / "videos" / "v.mp4") == "$FACEWEAR_DATA/videos/v.mp4"
    assert portable_path("rel/x.jpg") == "rel/x.jpg"
    report = {"video": str(data / "v.mp4"), "rows": [{"cmd": f"facewear val --model {REPO_ROOT}/weights/m.pt"}],
              "n": 3}
    out = portable_paths(report)
    assert out == {"video": "$FACEWEAR_DATA/v.mp4", "rows": [{"cmd": "facewear val --model weights/m.pt"}], "n": 3}
    assert str(tmp_path) not in str(out) and str(REPO_ROOT) not in str(out)
