"ppad-synth and ppad-bench as a user runs them: outputs, --help, and every kind of bad input."
import json

import numpy as np
from PIL import Image

from conftest import assert_user_error, copy_images, run


def test_synth_writes_grid_of_requested_size(tmp_path, sample):
    train, _ = sample
    out = tmp_path / "grid.png"
    result = run("ppad-synth", train.files[0].parent, "--out", out, "--count", 6, "--seed", 1)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    grid = Image.open(out)
    assert grid.size == (4 * 224, 2 * (224 + 18))
    # the blob outline is drawn in red, so the grid is not a grayscale picture
    pixels = np.asarray(grid.convert("RGB")).reshape(-1, 3)
    assert ((pixels[:, 0] == 255) & (pixels[:, 1] == 64)).any()


def test_synth_is_reproducible_and_seed_dependent(tmp_path, sample):
    folder = sample[0].files[0].parent
    outs = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    for out, seed in zip(outs, (5, 5, 6)):
        assert run("ppad-synth", folder, "--out", out, "--count", 4, "--seed", seed).returncode == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_synth_patch_method_and_256_px(tmp_path, sample):
    folder = sample[0].files[0].parent
    result = run("ppad-synth", folder, "--out", tmp_path / "p.png", "--count", 2, "--method", "patch", "--size", 256)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "p.png").size == (2 * 256, 256 + 18)


def test_synth_help_explains_itself():
    result = run("ppad-synth", "--help")
    assert result.returncode == 0
    for word in ("--out", "--region", "--strength", "--method", "example"): assert word in result.stdout


def test_synth_refuses_to_overwrite_unless_forced(tmp_path, sample):
    folder, out = sample[0].files[0].parent, tmp_path / "grid.png"
    out.write_bytes(b"precious")
    assert_user_error(run("ppad-synth", folder, "--out", out, "--count", 1), out, "already exists")
    assert out.read_bytes() == b"precious"
    assert_user_error(run("ppad-synth", folder, "--out", out, "--count", 1, "--force"), out, "was not written by the kit")
    assert out.read_bytes() == b"precious"  # --force replaces only the kit's own files
    out.unlink()
    assert run("ppad-synth", folder, "--out", out, "--count", 1).returncode == 0
    first = out.read_bytes()
    assert run("ppad-synth", folder, "--out", out, "--count", 1, "--seed", 1, "--force").returncode == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and out.read_bytes() != first


def test_missing_folder(tmp_path):
    assert_user_error(run("ppad-synth", tmp_path / "nowhere", "--out", tmp_path / "g.png"), tmp_path / "nowhere", "folder not found")
    assert not (tmp_path / "g.png").exists()


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert_user_error(run("ppad-synth", tmp_path / "empty", "--out", tmp_path / "g.png"), tmp_path / "empty", "no images")


def test_non_image_files_among_images(tmp_path, sample):
    folder = tmp_path / "mixed"
    copy_images(sample[0].files[:3], folder)
    (folder / "README.txt").write_text("a note that is not an image")  # not an image suffix: skipped
    (folder / ".DS_Store").write_bytes(b"\0\1")  # hidden: skipped
    (folder / "._IM-0119-0001.png").write_bytes(b"\0\5\26\7")  # macOS companion file: hidden, skipped
    assert run("ppad-synth", folder, "--out", tmp_path / "ok.png", "--count", 3).returncode == 0
    (folder / "scan.png").write_text("this file has an image name but is text")
    assert_user_error(run("ppad-synth", folder, "--out", tmp_path / "bad.png", "--count", 4), folder / "scan.png", "not an image file")
    assert not (tmp_path / "bad.png").exists()


def test_truncated_png(tmp_path, sample):
    folder = tmp_path / "truncated"
    folder.mkdir()
    data = sample[0].files[0].read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    assert_user_error(run("ppad-synth", folder, "--out", tmp_path / "g.png", "--count", 1), folder / "cut.png", "truncated")


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, sample):
    folder = tmp_path / "sixteen"
    folder.mkdir()
    eight = np.asarray(Image.open(sample[0].files[0]).convert("L"))
    Image.fromarray(eight.astype(np.uint16) * 257).save(folder / "deep.png")
    assert Image.open(folder / "deep.png").mode.startswith("I")
    assert run("ppad-synth", folder, "--out", tmp_path / "g.png", "--count", 1, "--no-outline").returncode == 0
    from ppad_nb.data import load_image
    np.testing.assert_array_equal(load_image(folder / "deep.png"), load_image(sample[0].files[0]))


def test_rgb_jpeg_is_converted(tmp_path, sample):
    folder = tmp_path / "jpeg"
    folder.mkdir()
    Image.open(sample[0].files[0]).convert("RGB").save(folder / "colour.jpg", quality=95)
    assert run("ppad-synth", folder, "--out", tmp_path / "g.png", "--count", 1).returncode == 0
    from ppad_nb.data import load_image
    jpeg = load_image(folder / "colour.jpg").astype(float)
    assert np.abs(jpeg - load_image(sample[0].files[0])).mean() < 2


def test_bad_options(tmp_path, sample):
    folder = sample[0].files[0].parent
    assert_user_error(run("ppad-synth", folder, "--out", tmp_path / "g.jpg"), "g.jpg", "must be a .png")
    assert_user_error(run("ppad-synth", folder, "--out", tmp_path / "g.png", "--count", 0), "--count")
    assert_user_error(run("ppad-synth", folder, "--out", tmp_path / "g.png", "--count", 1001), "--count must be between 1 and 1000, not 1001")
    result = run("ppad-synth", folder, "--out", tmp_path / "g.png", "--region", "middle")
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_bench_sas_json():
    result = run("ppad-bench", "sas", "--draws", 30, "--reference-draws", 2, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["bench"] == "sas" and record["draws"] == 30
    assert 0 < record["p10_ms"] <= record["median_ms"] <= record["p90_ms"]
    assert record["speedup"] == record["reference_median_ms"] / record["median_ms"]


def test_bench_sas_table():
    result = run("ppad-bench", "sas", "--draws", 10, "--reference-draws", 0)
    assert result.returncode == 0, result.stderr
    assert "median ms" in result.stdout and "synthesize_anomaly" in result.stdout


def test_bench_requires_a_benchmark():
    result = run("ppad-bench")
    assert result.returncode == 2 and "sas" in result.stderr
