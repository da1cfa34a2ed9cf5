"Benchmarks outside the paper: BMAD's layout with MVFA's few-shot files, Med-AD's RSNA, their presets, and hostile seed files."
import json
import shutil

import pytest

from conftest import assert_user_error, copy_images, run


@pytest.fixture()
def bmad(tmp_path, sample):
    "A BMAD-layout folder of real X-rays (MVFA's copy: no train/), and an MVFA 4-shot file naming four of its valid normals."
    train, test = sample
    root = tmp_path / "Chest_AD"
    normals = copy_images(train.files[:8], root / "valid/good/img")
    copy_images([f for f, l in zip(test.files, test.labels) if l == 1][:3], root / "valid/Ungood/img")
    copy_images([f for f, l in zip(test.files, test.labels) if l == 0][:3], root / "test/good/img")
    copy_images([f for f, l in zip(test.files, test.labels) if l == 1][3:6], root / "test/Ungood/img")
    seeds = tmp_path / "4-shot.txt"
    chosen = [normals[i].name for i in (6, 1, 4, 2)]
    abnormal = sorted(p.name for p in (root / "valid/Ungood/img").iterdir())
    seeds.write_text(f"n-0: {' '.join(chosen)}\na-0: {' '.join(abnormal)}\n")
    return root, seeds, chosen


def train_args(root, seeds, out, *extra):
    return ("--preset", "bmad-chest", "--data", root, "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 4,
            "--batch-size", 4, "--shots-file", seeds, "--out", out, *extra)


def test_bmad_with_mvfa_seeds_trains_and_evaluates(tmp_path, bmad):
    root, seeds, chosen = bmad
    result = run("ppad-train", *train_args(root, seeds, tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    shots = (tmp_path / "run/shots.csv").read_text().splitlines()[1:]
    assert [line.split(",")[0] for line in shots] == [f"valid/good/img/{name}" for name in chosen]  # exactly n-0, in its order
    state = json.loads((tmp_path / "run/run.json").read_text())
    assert state["shots_from"]["line"] == "n-0" and state["shots_from"]["abnormal_not_used"] == 3
    assert "a-0 (3 abnormal images) not used: PPAD trains on normal images only" in state["shots_from"]["note"]
    result = run("ppad-evaluate", "--run", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "on 6 images" in result.stdout and (tmp_path / "run/report/metrics.json").is_file()  # test/good + test/Ungood


def test_bmad_seed_file_naming_an_unknown_image_is_refused_before_any_work(tmp_path, bmad):
    root, seeds, chosen = bmad
    seeds.write_text(f"n-0: {' '.join(chosen[:3])} not-here.png\n")
    assert_user_error(run("ppad-train", *train_args(root, seeds, tmp_path / "run")), "4-shot.txt", "not-here.png", "not a normal training image")
    assert not (tmp_path / "run").exists()
    # an abnormal image of valid/ is not a training normal either
    seeds.write_text(f"n-0: {' '.join(chosen[:3])} {sorted(p.name for p in (root / 'valid/Ungood/img').iterdir())[0]}\n")
    assert_user_error(run("ppad-train", *train_args(root, seeds, tmp_path / "run")), "not a normal training image")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, fragment", [
    ("n-0: {a} {b}\nshots = {c}\n", "line 2 is not 'n-K: names'"),
    ("n-0: {a} {b} {a} {c}\n", "names {a} more than once"),
    ("n-0:\na-0: x.png\n", "line n-0 names no image"),
    ("n-0: ../{a} {b} {c} {d}\n", "which is not a plain image file name"),
    ("n-0: /etc/{a} {b} {c} {d}\n", "which is not a plain image file name"),
    ("n-0: {a} {b} {c} {d}\nn-0: {a} {b} {c} {d}\n", "n-0 appears twice"),
    ("n-1: {a} {b} {c} {d}\n", "has no line n-0 for seed 0 (it has: n-1)"),
    ("n-0: {a} {b} {c}\n", "lists 3 shots, not 4: pass --shots 3"),
    ("n-0: {a} {b} {c} {d}\na-0: ../../x.png\n", "line a-0 names '../../x.png'"),
])
def test_hostile_seed_files(tmp_path, bmad, capsys, text, fragment):
    from ppad_nb.cli import run_script, train_command  # in this process: each case is refused before CLIP is loaded
    root, seeds, chosen = bmad
    names = dict(zip("abcd", chosen))
    seeds.write_text(text.format(**names))
    assert run_script(train_command, [str(a) for a in train_args(root, seeds, tmp_path / "run")], prog="ppad-train") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ppad-train: error: ") and "4-shot.txt" in lines[0], lines
    assert fragment.format(**names) in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_seed_file_that_is_not_text(tmp_path, bmad):
    root, seeds, _ = bmad
    seeds.write_bytes(b"n-0: \xff\xfe\x00.png\n")
    assert_user_error(run("ppad-train", *train_args(root, seeds, tmp_path / "run")), "4-shot.txt", "not a text file")


def test_bmad_missing_split_folders(tmp_path, bmad):
    root, seeds, _ = bmad
    shutil.rmtree(root / "test/Ungood")
    assert_user_error(run("ppad-evaluate", "--learner", seeds, "--preset", "bmad-chest", "--data", root, "--clip-weights", "random:tiny",
                          "--out", tmp_path / "report"), "test/Ungood/img", "folder not found")
    assert_user_error(run("prepare_bmad.py", root), "test/Ungood/img", "folder not found")
    shutil.rmtree(root / "valid/good")
    assert_user_error(run("ppad-train", *train_args(root, seeds, tmp_path / "run")), "has neither train/good/img nor valid/good/img")
    assert not (tmp_path / "run").exists()


def test_prepare_bmad_reports_counts_and_checks_seeds(tmp_path, bmad):
    root, seeds, _ = bmad
    result = run("prepare_bmad.py", root, "--seeds", seeds, "--verify")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if "/img" in line.split()[0]}
    assert rows["valid/good/img"][-1] == "8" and rows["valid/Ungood/img"][-1] == "3" and rows["train/good/img"][-1] == "0"
    assert rows["valid/Ungood/img"][1:3] == ["not", "used"]
    assert "draws n-0 name normal images" in result.stdout and "ready for ppad-nb (layout 'bmad'" in result.stdout
    seeds.write_text("n-0: ghost.png\n")
    assert_user_error(run("prepare_bmad.py", root, "--seeds", seeds), "ghost.png", "not a normal training image")


def test_rsna_medad_layout_trains_and_evaluates(tmp_path, sample):
    train, test = sample
    root = tmp_path / "data" / "RSNA"
    copy_images(train.files[:4] + test.files[:2] + test.files[-2:], root / "images")
    names = [f.name for f in train.files[:4]]
    index = {"train": {"0": names, "unlabeled": {}}, "test": {"0": [f.name for f in test.files[:2]], "1": [f.name for f in test.files[-2:]]}}
    (root / "data.json").write_text(json.dumps(index))
    out = tmp_path / "run"
    # the preset's root is RSNA under $PPAD_DATA; --data may name it or the folder that holds it
    result = run("ppad-train", "--preset", "rsna", "--data", tmp_path / "data", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 4,
                 "--batch-size", 4, "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(line.split(",")[0] for line in (out / "shots.csv").read_text().splitlines()[1:]) == sorted(f"RSNA/images/{n}" for n in names)
    result = run("ppad-evaluate", "--run", out)
    assert result.returncode == 0, result.stderr
    assert "on 4 images" in result.stdout


def test_reproduce_table_shows_what_others_publish(tmp_path, bmad):
    root, _, _ = bmad
    result = run("ppad-reproduce", "--preset", "bmad-chest", "--data", root, "--clip-weights", "random:tiny", "--methods", "chexzero",
                 "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "r/table.md").read_text()
    assert "- MVFA zero-shot: AUC 71.1% (" in table and "- MVFA 4-shot: AUC 82.0% (" in table and "chosen on the test set" in table


def test_seed_name_found_in_train_and_valid_is_refused(tmp_path, bmad, capsys):
    from ppad_nb.cli import run_script, train_command
    root, seeds, chosen = bmad
    (root / "train/good/img").mkdir(parents=True)
    shutil.copy(root / "valid/good/img" / chosen[0], root / "train/good/img" / chosen[0])  # BMAD's own train/ holding the same name
    assert run_script(train_command, [str(a) for a in train_args(root, seeds, tmp_path / "run")], prog="ppad-train") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"names {chosen[0]}, which is the name of several training normals" in lines[0], lines
    assert not (tmp_path / "run").exists()
