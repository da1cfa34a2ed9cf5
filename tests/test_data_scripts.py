"The data scripts: prepare the raw ZhangLab download, check CheXpert and VinDr-CXR releases, name what is wrong."
import json

import numpy as np
from PIL import Image

from conftest import assert_user_error, copy_images, run
from ppad_nb.data import read_dataset


def table_rows(text):
    "The rows of a printed table, as lists of words."
    return [line.split() for line in text.splitlines()]


def raw_kermany(root, sample):
    "A small raw Kermany download (JPEGs) made of real images from the bundled sample."
    train, test = sample
    base = root / "chest_xray"
    copy_images(train.files[:5], base / "train" / "NORMAL", ".jpeg")
    copy_images(test.normals()[:3], base / "test" / "NORMAL", ".jpeg")
    copy_images([f for f, l in zip(test.files, test.labels) if l][:4], base / "test" / "PNEUMONIA", ".jpeg")
    copy_images(train.files[5:6], base / "val" / "NORMAL", ".jpeg")
    return root


def test_prepare_zhanglab_writes_the_squid_layout(tmp_path, sample):
    source, out = raw_kermany(tmp_path / "download", sample), tmp_path / "zhanglab"
    result = run("prepare_zhanglab.py", "--source", source, "--out", out)
    assert result.returncode == 0, result.stderr
    assert ["test", "pneumonia", "4", "test/pneumonia_256", "0"] in table_rows(result.stdout), result.stdout
    train, test = read_dataset(out, split="train"), read_dataset(out, split="test")
    assert (train.layout, len(train), test.counts()) == ("zhanglab", 5, {"normal": 3, "abnormal": 4})
    image = Image.open(train.files[0])
    assert (image.mode, image.size) == ("L", (256, 256))


def test_prepare_zhanglab_keeps_existing_outputs_and_resumes(tmp_path, sample):
    source, out = raw_kermany(tmp_path / "download", sample), tmp_path / "zhanglab"
    assert run("prepare_zhanglab.py", "--source", source, "--out", out).returncode == 0
    kept = sorted((out / "train" / "normal_256").iterdir())[0]
    kept.write_bytes(b"user's own file")
    removed = sorted((out / "test" / "pneumonia_256").iterdir())[0]
    removed.unlink()
    result = run("prepare_zhanglab.py", "--source", source, "--out", out)
    assert result.returncode == 0, result.stderr
    assert kept.read_bytes() == b"user's own file"
    assert removed.exists() and "wrote 1 images" in result.stdout


def test_prepare_zhanglab_names_missing_path(tmp_path, sample):
    source = raw_kermany(tmp_path / "download", sample)
    for f in (source / "chest_xray" / "test" / "PNEUMONIA").iterdir(): f.unlink()
    (source / "chest_xray" / "test" / "PNEUMONIA").rmdir()
    line = assert_user_error(run("prepare_zhanglab.py", "--source", source, "--out", tmp_path / "out"),
                             source / "chest_xray" / "test" / "PNEUMONIA", "folder not found")
    assert not (tmp_path / "out").exists(), line
    assert_user_error(run("prepare_zhanglab.py", "--source", tmp_path / "nothing", "--out", tmp_path / "out"), "nothing", "folder not found")


def test_prepare_zhanglab_names_corrupt_file(tmp_path, sample):
    source = raw_kermany(tmp_path / "download", sample)
    bad = source / "chest_xray" / "train" / "NORMAL" / "broken.jpeg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert_user_error(run("prepare_zhanglab.py", "--source", source, "--out", tmp_path / "out"), bad)


def chexpert_release(root, sample, abnormal="abnormal_256"):
    train, test = sample
    copy_images(train.files[:4], root / "train_256_pa" / "normal_256")
    copy_images(test.normals()[:3], root / "our_test_256_pa" / "normal_256")
    copy_images([f for f, l in zip(test.files, test.labels) if l][:2], root / "our_test_256_pa" / abnormal)
    return root


def test_prepare_chexpert_reports_counts(tmp_path, sample):
    for abnormal in ("abnormal_256", "pneumonia_256"):
        root = chexpert_release(tmp_path / abnormal, sample, abnormal)
        result = run("prepare_chexpert.py", root)
        assert result.returncode == 0, result.stderr
        assert ["test", "abnormal", "2", f"our_test_256_pa/{abnormal}"] in table_rows(result.stdout), result.stdout


def test_prepare_chexpert_fixes_letter_case(tmp_path, sample):
    root = chexpert_release(tmp_path / "cx", sample)
    (root / "our_test_256_pa" / "normal_256").rename(root / "our_test_256_pa" / "Normal_256")
    result = run("prepare_chexpert.py", root)
    assert result.returncode == 0 and "--fix renames it" in result.stdout
    assert (root / "our_test_256_pa" / "Normal_256").is_dir()
    result = run("prepare_chexpert.py", root, "--fix")
    assert result.returncode == 0 and (root / "our_test_256_pa" / "normal_256").is_dir()


def test_prepare_chexpert_names_missing_folder(tmp_path, sample):
    root = chexpert_release(tmp_path / "cx", sample)
    for f in (root / "our_test_256_pa" / "abnormal_256").iterdir(): f.unlink()
    (root / "our_test_256_pa" / "abnormal_256").rmdir()
    assert_user_error(run("prepare_chexpert.py", root), root / "our_test_256_pa" / "abnormal_256", "folder not found")
    assert_user_error(run("prepare_chexpert.py", tmp_path / "nothing"), "nothing", "folder not found")


def test_prepare_chexpert_verify_finds_truncated_file(tmp_path, sample):
    root = chexpert_release(tmp_path / "cx", sample)
    victim = sorted((root / "train_256_pa" / "normal_256").iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:2000])
    assert run("prepare_chexpert.py", root).returncode == 0  # listing alone does not decode
    assert_user_error(run("prepare_chexpert.py", root, "--verify"), victim, "truncated")


def vindr_release(root, sample):
    train, test = sample
    names = [f.name for f in copy_images(train.files[:6] + test.files[-2:], root / "VinCXR" / "images")]
    index = {"train": {"0": names[:4], "unlabeled": {"0": names[4:5], "1": names[5:6]}}, "test": {"0": names[4:6], "1": names[6:8]}}
    (root / "VinCXR" / "data.json").write_text(json.dumps(index))
    return root


def test_prepare_vindr_reports_counts(tmp_path, sample):
    root = vindr_release(tmp_path / "medad", sample)
    result = run("prepare_vindr.py", root)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert ["train", '["0"]', "normal", "4", "release", "has", "4000"] in rows, result.stdout
    assert ["test", '["1"]', "abnormal", "2", "release", "has", "1000"] in rows, result.stdout
    assert read_dataset(root / "VinCXR", split="test").counts() == {"normal": 2, "abnormal": 2}


def test_prepare_vindr_names_missing_file(tmp_path, sample):
    root = vindr_release(tmp_path / "medad", sample)
    victim = sorted((root / "VinCXR" / "images").iterdir())[0]
    victim.unlink()
    assert_user_error(run("prepare_vindr.py", root), victim.name, "listed in data.json but not found")


def test_prepare_vindr_broken_index_and_case(tmp_path, sample):
    root = vindr_release(tmp_path / "medad", sample)
    (root / "VinCXR" / "images").rename(root / "VinCXR" / "Images")
    assert_user_error(run("prepare_vindr.py", root), "Images", "--fix renames it")
    assert run("prepare_vindr.py", root, "--fix").returncode == 0
    (root / "VinCXR" / "data.json").write_text("{not json")
    assert_user_error(run("prepare_vindr.py", root), "data.json", "not valid JSON")
    (root / "VinCXR" / "data.json").write_text(json.dumps({"train": {"0": []}}))
    assert_user_error(run("prepare_vindr.py", root), "data.json", 'has no list test["0"]')
