"""Hostile outputs, records and bounds (issue 17, principles 1, 2 and 4): each case builds its hostile situation and
asserts the outcome: one line and a non-zero exit, no file outside the output folder changed (SHA-256 of every user
file before and after), no input overwritten, no stale record used, every case bounded in time.

One tiny run (random:tiny, one epoch, eight shots) is trained and evaluated once; cases that change it work on a copy.
"""
import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import BIN, FIXTURES, assert_user_error, call, copy_images
from ppad_nb import baselines, cli
from ppad_nb.data import read_dataset
from ppad_nb.safety import file_digest
from ppad_nb.runs import clip_source_of, report_made_with, stale_report, image_set_digest
from ppad_nb.model import RandomWeightsWarning
from ppad_nb.safety import (LOCK_NAME, MADE_NAME, PPADError, atomic_write, check_output, check_outputs, folder_lock, made_by_kit,
                            record_made)
from ppad_nb.runs import LEARNER_FILE, run_learner, train

pytestmark = pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning", "ignore::FutureWarning")
TINY = dict(epochs=1, shots=8, batch_size=8)
LEARNER = FIXTURES / "parity-tiny" / "learner_tiny.pt"




def snapshot(root) -> dict:
    "Every entry under `root`: a file by its SHA-256, a link by its target, a folder by its name."
    root, found = Path(root), {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink(): found[key] = "link -> " + os.readlink(p)
        elif p.is_file(): found[key] = hashlib.sha256(p.read_bytes()).hexdigest()
        else: found[key] = "folder"
    return found


def subprocess_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PPAD_DEVICE="cpu", OMP_NUM_THREADS="1", **extra)
    return env


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    "A finished tiny run with its report (ppad-evaluate --run), made once."
    from ppad_nb.model import load_clip
    run_dir = tmp_path_factory.mktemp("made") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        train("demo", clip=load_clip("random:tiny"), out=run_dir, progress=False, **TINY)
    result = call(cli.evaluate_command, "--run", run_dir, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.fixture
def run_copy(made, tmp_path):
    "A copy of the made run that a case may damage."
    copy = tmp_path / "run"
    shutil.copytree(made, copy, symlinks=True)
    return copy


@pytest.fixture
def userdir(tmp_path, sample):
    "The user's folder: two X-rays, notes, and a file elsewhere that links can point to."
    folder = tmp_path / "userdir"
    copy_images(sample[1].files[:2], folder)
    (folder / "notes.txt").write_text("the user's notes\n")
    (tmp_path / "elsewhere.txt").write_text("a file outside every output folder\n")
    return folder


def xrays(folder): return sorted(p for p in Path(folder).iterdir() if p.suffix == ".png")


MODEL = ["--clip-weights", "random:tiny", "--learner", LEARNER, "--device", "cpu"]


# ---------------------------------------------------------------------------------------------------------------
# 1. Outputs never touch inputs or strangers' files: the library rule (check_output, atomic_write, the kit's list)

@pytest.mark.parametrize("force", [False, True])
def test_an_output_that_is_an_input_is_refused(userdir, force):
    image = xrays(userdir)[0]
    before = snapshot(userdir.parent)
    with pytest.raises(PPADError, match="is an input of this command"): check_output(image, force, inputs=[image])
    assert snapshot(userdir.parent) == before


@pytest.mark.parametrize("spelling", ["hardlink", "dotdot", "linked_folder"])
def test_an_input_under_another_name_is_still_an_input(userdir, tmp_path, spelling):
    image = xrays(userdir)[0]
    if spelling == "hardlink": other = tmp_path / "hard.png"; os.link(image, other)
    elif spelling == "dotdot": other = userdir / ".." / userdir.name / image.name
    else: (tmp_path / "via").symlink_to(userdir); other = tmp_path / "via" / image.name
    with pytest.raises(PPADError, match="is an input of this command"): check_output(other, True, inputs=[image])


@pytest.mark.parametrize("target", ["existing", "dangling"])
def test_an_output_that_is_a_link_is_refused(userdir, tmp_path, target):
    link = userdir / "figure.png"
    link.symlink_to(tmp_path / ("elsewhere.txt" if target == "existing" else "nowhere.txt"))
    before = snapshot(tmp_path)
    with pytest.raises(PPADError, match="is a symbolic link; the kit does not write through links"): check_output(link, True)
    with pytest.raises(PPADError, match="is a symbolic link"):
        with atomic_write(link) as f: f.write("redirected")
    assert snapshot(tmp_path) == before and not (tmp_path / "nowhere.txt").exists()


def test_an_output_through_a_linked_subfolder_lies_outside_the_output_folder(tmp_path):
    out = tmp_path / "out"; out.mkdir()
    (tmp_path / "other").mkdir()
    (out / "sub").symlink_to(tmp_path / "other")
    with pytest.raises(PPADError, match="lies outside the output folder"): check_output(out / "sub" / "figure.png", folder=out)


@pytest.mark.parametrize("force, fragment", [(False, "already exists; pass --force"), (True, "was not written by the kit")])
def test_a_file_of_the_user_is_never_replaced(userdir, force, fragment):
    with pytest.raises(PPADError, match=fragment): check_output(userdir / "notes.txt", force)


def test_force_replaces_a_file_of_the_kit_but_not_once_the_user_changed_it(tmp_path):
    out = tmp_path / "scores.csv"
    with atomic_write(out) as f: f.write("file,score\n")
    assert made_by_kit(out) and check_output(out, force=True) == out
    out.write_text("file,score\nedited by the user\n")
    assert not made_by_kit(out)
    with pytest.raises(PPADError, match="was not written by the kit"): check_output(out, force=True)


def test_a_file_replaced_by_another_of_the_same_name_is_not_the_kits(tmp_path, userdir):
    out = tmp_path / "figure.png"
    with atomic_write(out, "wb") as f: f.write(b"the kit's figure")
    shutil.copy(xrays(userdir)[0], out)
    with pytest.raises(PPADError, match="was not written by the kit"): check_output(out, force=True)


def test_a_planted_list_with_a_wrong_digest_does_not_make_a_file_the_kits(tmp_path):
    (tmp_path / "mine.txt").write_text("mine")
    (tmp_path / MADE_NAME).write_text(f"{'0' * 64} \"mine.txt\"\n")
    with pytest.raises(PPADError, match="was not written by the kit"): check_output(tmp_path / "mine.txt", force=True)


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_the_kits_list_is_never_written_through_a_link(tmp_path, kind):
    victim = tmp_path / "victim.txt"; victim.write_text("the user's\n")
    out = tmp_path / "out"; out.mkdir()
    if kind == "symlink": (out / MADE_NAME).symlink_to(victim)
    else: os.link(victim, out / MADE_NAME)
    with pytest.raises(PPADError, match=MADE_NAME): record_made(_written(out / "a.csv"))
    assert victim.read_text() == "the user's\n"


def _written(path):
    path.write_text("x")
    return path


def test_a_folder_where_the_outputs_go_must_be_a_folder(tmp_path):
    (tmp_path / "report").write_text("a file")
    with pytest.raises(PPADError, match="exists and is not a folder"): check_outputs(tmp_path / "report", ["metrics.json"])


# ---------------------------------------------------------------------------------------------------------------
# 2. The console scripts, each with its hostile output

def test_predict_never_replaces_the_xray_it_scores(userdir):
    "The issue's case: ppad-predict userdir/xray.png --out userdir --force."
    before = snapshot(userdir.parent)
    image = xrays(userdir)[0]
    for force in ([], ["--force"]):
        result = call(cli.predict, image, *MODEL, "--out", userdir, *force, prog="ppad-predict")
        assert_user_error(result, image, "is an input of this command")
    assert snapshot(userdir.parent) == before


def test_predict_through_a_linked_out_does_not_replace_a_file_there(userdir, tmp_path):
    other = tmp_path / "other"; other.mkdir()
    image = xrays(userdir)[0]
    (other / image.name).write_bytes(b"another user file of the figure's name")
    (tmp_path / "link").symlink_to(other)
    before = snapshot(tmp_path)
    assert_user_error(call(cli.predict, image, *MODEL, "--out", tmp_path / "link", "--force", prog="ppad-predict"), "was not written by the kit")
    assert snapshot(tmp_path) == before


def test_predict_through_a_linked_figure_is_refused(userdir, tmp_path):
    out = tmp_path / "figures"; out.mkdir()
    image = xrays(userdir)[0]
    (out / image.name).symlink_to(tmp_path / "elsewhere.txt")
    before = snapshot(tmp_path)
    assert_user_error(call(cli.predict, image, *MODEL, "--out", out, "--force", prog="ppad-predict"), "is a symbolic link")
    assert snapshot(tmp_path) == before


def test_predict_force_replaces_its_own_figure_only(userdir, tmp_path):
    out = tmp_path / "figures"
    image = xrays(userdir)[0]
    assert call(cli.predict, image, *MODEL, "--out", out, prog="ppad-predict").returncode == 0
    assert call(cli.predict, image, *MODEL, "--out", out, "--force", prog="ppad-predict").returncode == 0  # its own: replaced
    (out / image.name).write_bytes(b"the user's edit")
    assert_user_error(call(cli.predict, image, *MODEL, "--out", out, "--force", prog="ppad-predict"), "was not written by the kit")
    assert (out / image.name).read_bytes() == b"the user's edit"


def test_synth_never_replaces_an_image_it_reads(userdir):
    before = snapshot(userdir)
    result = call(cli.synth, userdir, "--out", xrays(userdir)[0], "--count", 1, "--force", prog="ppad-synth")
    assert_user_error(result, "is an input of this command")
    assert snapshot(userdir) == before


@pytest.mark.parametrize("case", ["link", "user_csv", "learner"])
def test_score_refuses_hostile_outputs(userdir, tmp_path, case):
    learner = tmp_path / "learner.csv"; shutil.copy(LEARNER, learner)
    out = {"link": tmp_path / "s.csv", "user_csv": tmp_path / "mine.csv", "learner": learner}[case]
    if case == "link": out.symlink_to(tmp_path / "elsewhere.txt")
    if case == "user_csv": out.write_text("file,score\nmine,1\n")
    before = snapshot(tmp_path)
    result = call(cli.score, "--clip-weights", "random:tiny", "--learner", learner, "--images", userdir, "--out", out, "--force", "--device", "cpu", prog="ppad-score")
    assert_user_error(result, {"link": "is a symbolic link", "user_csv": "was not written by the kit", "learner": "is an input of this command"}[case])
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["README.md", "metrics.json", "scores.csv"])
def test_evaluate_force_keeps_the_users_files_in_the_report_folder(made, tmp_path, name):
    out = tmp_path / "report"; out.mkdir()
    (out / name).write_text("the user's\n")
    before = snapshot(tmp_path)
    result = call(cli.evaluate_command, "--run", made, "--out", out, "--force", "--device", "cpu", prog="ppad-evaluate")
    assert_user_error(result, out / name, "was not written by the kit")
    assert snapshot(tmp_path) == before


def test_evaluate_force_does_not_write_through_a_linked_report_file(run_copy, tmp_path):
    victim = tmp_path / "victim.json"; victim.write_text("{}")
    (run_copy / "report" / "metrics.json").unlink()
    (run_copy / "report" / "metrics.json").symlink_to(victim)
    assert_user_error(call(cli.evaluate_command, "--run", run_copy, "--force", "--device", "cpu", prog="ppad-evaluate"), "is a symbolic link")
    assert victim.read_text() == "{}"


def test_evaluate_force_replaces_its_own_report(run_copy):
    before = (run_copy / "report" / "metrics.json").read_bytes()
    assert call(cli.evaluate_command, "--run", run_copy, "--force", "--device", "cpu", prog="ppad-evaluate").returncode == 0
    assert json.loads((run_copy / "report" / "metrics.json").read_text())["auc"] == json.loads(before)["auc"]


# ---------------------------------------------------------------------------------------------------------------
# 3. Locks and temporary files: never followed, never truncated, never deleted unless this process made them

TRAIN = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 8, "--batch-size", 8, "--device", "cpu"]


@pytest.mark.parametrize("kind, fragment", [("symlink", "is a symbolic link; the kit does not follow it"),
                                            ("dangling", "is a symbolic link; the kit does not follow it"),
                                            ("hardlink", "is not the kit's lock file"), ("folder", "is not the kit's lock file")])
def test_a_planted_lock_is_refused_and_never_followed(tmp_path, kind, fragment):
    victim = tmp_path / "victim.txt"; victim.write_text("the user's\n")
    ud = tmp_path / "ud"; ud.mkdir()
    lock = ud / LOCK_NAME
    if kind == "symlink": lock.symlink_to(victim)
    elif kind == "dangling": lock.symlink_to(tmp_path / "created-through-the-link")
    elif kind == "hardlink": os.link(victim, lock)
    else: lock.mkdir()
    before = snapshot(tmp_path)
    assert_user_error(call(cli.train_command, *TRAIN, "--out", ud, prog="ppad-train"), lock, fragment)
    assert snapshot(tmp_path) == before and not (tmp_path / "created-through-the-link").exists()


def test_filelock_itself_neither_follows_nor_truncates_a_linked_lock_file(tmp_path):
    "What the kit relies on between its own check and filelock's open: O_NOFOLLOW, no O_TRUNC (filelock >= 4.3)."
    import filelock
    victim = tmp_path / "victim.txt"; victim.write_text("the user's\n")
    (tmp_path / LOCK_NAME).symlink_to(victim)
    with pytest.raises(OSError): filelock.FileLock(tmp_path / LOCK_NAME, blocking=False).acquire()
    assert victim.read_text() == "the user's\n"


def test_the_lock_is_reentrant_signed_and_removed(tmp_path):
    with folder_lock(tmp_path, "first"):
        with folder_lock(tmp_path, "second"): signed = (tmp_path / LOCK_NAME).read_text()
        assert (tmp_path / LOCK_NAME).exists()
    assert signed.startswith(f"pid {os.getpid()} on ") and signed.endswith("(first)\n")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_second_process_is_refused_while_the_lock_is_held(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ppad_nb.safety import folder_lock\n"
                               "with folder_lock(sys.argv[1], 'holder'): print('held', flush=True); time.sleep(60)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PPADError, match=f"is in use by pid {holder.pid} on .* \\(holder\\)"):
            with folder_lock(tmp_path): pass
    finally:
        holder.kill(); holder.wait(timeout=30)
    with folder_lock(tmp_path): pass  # the lock died with its process


@pytest.mark.parametrize("name", [".draft.abcdefgh.tmp", ".ppad-tmp-notes", ".ppad-tmp-k1ll3d00", ".run.json.ab12cd34.tmp"])
def test_files_named_like_the_kits_temporaries_survive_a_run(tmp_path, name):
    ud = tmp_path / "ud"; ud.mkdir()
    (ud / name).write_text("the user's\n")
    assert call(cli.train_command, *TRAIN, "--out", ud, prog="ppad-train").returncode == 0
    assert (ud / name).read_text() == "the user's\n"


def test_a_failed_write_removes_only_its_own_temporary(tmp_path):
    (tmp_path / ".ppad-tmp-users").write_text("the user's\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "a.csv") as f: f.write("half"); raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ppad-tmp-users"]


@pytest.mark.parametrize("name", ["loss.png", "run.json", "history.csv", "report/README.md"])
def test_overwrite_replaces_only_the_kits_run_files(tmp_path, name):
    "A file of the user under a name the kit uses, in a folder where the kit never wrote it."
    ud = tmp_path / "ud"; (ud / "report").mkdir(parents=True)
    (ud / name).write_text("the user's\n")
    before = snapshot(ud)
    assert_user_error(call(cli.train_command, *TRAIN, "--out", ud, "--overwrite", prog="ppad-train"), ud / name, "was not written by the kit")
    assert snapshot(ud) == before


def test_overwrite_does_not_follow_a_linked_run_file(run_copy, tmp_path):
    victim = tmp_path / "victim.txt"; victim.write_text("the user's\n")
    (run_copy / "history.csv").unlink()
    (run_copy / "history.csv").symlink_to(victim)
    assert_user_error(call(cli.train_command, *TRAIN, "--out", run_copy, "--overwrite", prog="ppad-train"), "history.csv", "was not written by the kit")
    assert victim.read_text() == "the user's\n"


def test_overwrite_still_replaces_a_damaged_checkpoint_of_the_kit(tmp_path):
    out = tmp_path / "run"
    assert call(cli.train_command, *TRAIN, "--out", out, prog="ppad-train").returncode == 0
    (out / "checkpoint.pt").write_bytes(b"damaged")
    assert call(cli.train_command, *TRAIN, "--out", out, "--overwrite", prog="ppad-train").returncode == 0


def test_a_table_that_is_a_link_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"; out.mkdir()
    victim = tmp_path / "victim.md"; victim.write_text("the user's\n")
    (out / "table.md").symlink_to(victim)
    args = ["--preset", "demo", "--clip-weights", "random:tiny", "--methods", "chexzero", "--device", "cpu", "--out", out]
    for extra in ([], ["--overwrite"]):
        assert_user_error(call(cli.reproduce_command, *args, *extra, prog="ppad-reproduce"), "table.md", "is a symbolic link")
    assert victim.read_text() == "the user's\n" and sorted(p.name for p in out.iterdir()) == ["table.md"]


def test_overwrite_does_not_replace_a_table_of_the_user(tmp_path):
    (tmp_path / "table.csv").write_text("my,table\n")
    args = ["--preset", "demo", "--clip-weights", "random:tiny", "--methods", "chexzero", "--device", "cpu", "--out", tmp_path, "--overwrite"]
    assert_user_error(call(cli.reproduce_command, *args, prog="ppad-reproduce"), "table.csv: exists and was not written by reproduce")
    assert (tmp_path / "table.csv").read_text() == "my,table\n"


# ---------------------------------------------------------------------------------------------------------------
# 4. A full disk names the file being written

def _limited(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_during_training_names_the_file(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([str(BIN / "ppad-train"), *map(str, TRAIN), "--out", str(out)], capture_output=True, text=True,
                            preexec_fn=_limited(2_000), timeout=120, env=subprocess_env())
    line = assert_user_error(result, "cannot write")
    assert str(out) in line and not any(p.name.startswith(".ppad-tmp-") for p in out.iterdir())


@pytest.mark.parametrize("number, words", [(errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "the disk quota is exceeded")])
def test_a_full_disk_while_scoring_names_the_csv(userdir, tmp_path, monkeypatch, number, words):
    out = tmp_path / "scores.csv"
    import ppad_nb.evaluate as evaluate
    real = evaluate.atomic_write
    @contextlib.contextmanager
    def full(path, *args, **kwargs):
        with real(path, *args, **kwargs) as f:
            yield f
            raise OSError(number, os.strerror(number))  # as the last block of the file meets a full disk
    monkeypatch.setattr(evaluate, "atomic_write", full)
    result = call(cli.score, *MODEL[:4], "--images", userdir, "--out", out, "--device", "cpu", prog="ppad-score")
    assert_user_error(result, out, f"cannot write: {words}")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ppad-tmp")) == [] and not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# 5. A record names everything a result depends on, by content

def test_a_report_records_its_learner_clip_and_test_set_by_content(made):
    record = json.loads((made / "report" / "metrics.json").read_text())["made_with"]
    assert record["learner_sha256"] == file_digest(run_learner(made))
    assert (record["clip"], record["clip_spec"], record["precision"]) == ("random:tiny", "random:tiny", "fp32")  # a random CLIP: by its spec
    assert record["test_set"] == image_set_digest(read_dataset(Path(json.loads((made / "run.json").read_text())["data"]), "kermany", "test"))


def test_predict_run_uses_the_threshold_of_an_unchanged_run(made, userdir):
    result = call(cli.predict, xrays(userdir)[0], "--run", made, "--json", "--device", "cpu", prog="ppad-predict")
    assert result.returncode == 0, result.stderr
    points = {p["name"]: p["threshold"] for p in json.loads((made / "report" / "metrics.json").read_text())["operating_points"]}
    assert json.loads(result.stdout)["threshold"] == points["heldout_normals_95"]


@pytest.mark.parametrize("change, fragment", [
    ("learner", "was made with another learner"),
    ("record", "holds no record of what made it"),
    ("clip", "was made with the CLIP random:small, not random:tiny"),
])
def test_predict_run_refuses_a_stale_report(run_copy, userdir, change, fragment):
    metrics = run_copy / "report" / "metrics.json"
    record = json.loads(metrics.read_text())
    if change == "learner": (run_copy / LEARNER_FILE).write_bytes(_retrained_learner(run_copy))  # the run's learner replaced after evaluation
    if change == "record": del record["made_with"]; metrics.write_text(json.dumps(record))
    if change == "clip": record["made_with"].update(clip="random:small", clip_spec="random:small"); metrics.write_text(json.dumps(record))
    result = call(cli.predict, xrays(userdir)[0], "--run", run_copy, "--device", "cpu", prog="ppad-predict")
    assert_user_error(result, metrics, "do not hold for the run as it is now", fragment)


def _retrained_learner(run_dir):
    "The bytes of a learner file that differs from the run's: same tensors, one metadata value changed."
    from safetensors.torch import load_file, save
    from safetensors import safe_open
    path = run_learner(run_dir)
    with safe_open(str(path), "pt") as f: metadata = f.metadata()
    tensors = load_file(str(path))
    tensors["ctx"] = tensors["ctx"] + 0.5
    return save(tensors, metadata=metadata)


def test_predict_run_refuses_when_the_clip_file_changed(run_copy, tmp_path, userdir):
    "A run of a CLIP weights file, evaluated; then the file at that path is replaced (same name, other weights)."
    clip = tmp_path / "clip.pt"; shutil.copy(FIXTURES / "parity-tiny" / "clip_tiny.pt", clip)
    for record_file in (run_copy / "run.json", run_copy / "report" / "metrics.json"):
        record = json.loads(record_file.read_text())
        record["made_with"].update(clip=file_digest(clip), clip_spec=str(clip), precision="fp32", rounded_like_release=True)
        record_file.write_text(json.dumps(record))
    state = json.loads((run_copy / "run.json").read_text())  # the run's own description of its CLIP, as ppad-train writes it
    state["clip"] = {"spec": str(clip), "sha256": file_digest(clip), "precision": "fp32", "rounded_like_release": True}
    (run_copy / "run.json").write_text(json.dumps(state))
    import torch
    weights = torch.load(clip, weights_only=True)
    weights["visual.proj"] = weights["visual.proj"] * 1.5
    torch.save(weights, clip)
    assert_user_error(call(cli.predict, xrays(userdir)[0], "--run", run_copy, "--device", "cpu", prog="ppad-predict"), "was made with the CLIP ", "(SHA-256 ")


def test_stale_report_compares_by_content(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"one"); b.write_bytes(b"one")  # same content, another name: the same learner
    (tmp_path / "m.json").write_text(json.dumps({"made_with": report_made_with(a, {"spec": "random:tiny"}, "t")}))
    assert stale_report(tmp_path / "m.json", b, {"spec": "random:tiny"}) is None
    b.write_bytes(b"two")
    assert stale_report(tmp_path / "m.json", b, {"spec": "random:tiny"}).startswith(f"{tmp_path / 'm.json'}: was made with another learner")
    (tmp_path / "m.json").write_text("not json")
    assert stale_report(tmp_path / "m.json", a, {"spec": "random:tiny"}).startswith(f"{tmp_path / 'm.json'}: cannot be read as JSON")


def test_the_clip_record_of_a_spec_follows_the_file_content(tmp_path):
    clip = tmp_path / "clip.pt"; clip.write_bytes(b"weights")
    first = clip_source_of(clip)
    clip.write_bytes(b"wEights")  # same size
    assert first["sha256"] != clip_source_of(clip)["sha256"] and clip_source_of("random:tiny") == {"spec": "random:tiny", "sha256": None}


@pytest.fixture
def data_copy(tmp_path, sample):
    "A copy of the bundled sample as a data folder of its own."
    root = tmp_path / "data"
    shutil.copytree(sample[1].root, root)
    return root


def _same_size_other_content(path):
    "Replace the PNG at `path` by another valid PNG of exactly the same byte size: other pixels, padded with a text chunk."
    import struct, zlib
    from PIL import Image
    size = path.stat().st_size
    image = Image.open(path)
    image.paste(0, (0, 0, 48, 48))  # a black corner: other pixels, and fewer bytes once compressed
    buffer = io.BytesIO(); image.save(buffer, format="PNG", compress_level=9)
    body = buffer.getvalue()[:-12]  # without IEND
    padding = size - len(body) - 12 - 12 - len(b"pad\0")
    assert padding >= 0, "the re-encoded image is larger than the original"
    data = b"pad\0" + b"x" * padding
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    path.write_bytes(body + chunk + buffer.getvalue()[-12:])
    assert path.stat().st_size == size


def test_the_test_set_digest_covers_contents_labels_and_names(data_copy):
    test_set = read_dataset(data_copy, "kermany", "test")
    first = image_set_digest(test_set)
    os.utime(test_set.files[0], (0, 0))
    assert image_set_digest(test_set) == first  # a touched file is the same file
    _same_size_other_content(Path(test_set.files[0]))
    assert image_set_digest(test_set) != first
    relabelled = test_set.__class__(**{**test_set.__dict__, "labels": [1 - test_set.labels[0]] + list(test_set.labels[1:])})
    assert image_set_digest(relabelled) != image_set_digest(test_set)


def test_reproduce_does_not_keep_a_report_of_a_replaced_test_image(data_copy, tmp_path):
    "The issue's case: one test image replaced by another of the same size must not print 'report kept'."
    out = tmp_path / "out"
    args = ["--preset", "demo", "--data", data_copy, "--clip-weights", "random:tiny", "--methods", "chexzero", "--device", "cpu", "--out", out]
    assert call(cli.reproduce_command, *args, prog="ppad-reproduce").returncode == 0
    test_set = read_dataset(data_copy, "kermany", "test")
    _same_size_other_content(Path(test_set.files[-1]))
    result = call(cli.reproduce_command, *args, prog="ppad-reproduce")
    assert_user_error(result, "a test set of digest", "--overwrite")
    assert "report kept" not in result.stdout
    again = call(cli.reproduce_command, *args, "--overwrite", prog="ppad-reproduce")
    assert again.returncode == 0 and "report kept" not in again.stdout, again.stderr


# ---------------------------------------------------------------------------------------------------------------
# 6. Bounded work: --jobs, killed job processes, torchrun ranks

REPRODUCE = ["--preset", "demo", "--clip-weights", "random:tiny", "--seeds", 0, 1, "--shots", 8, "--batch-size", 8, "--device", "cpu"]


@pytest.mark.parametrize("jobs, fragment", [(100000000, "this machine can run at most"), (0, "--jobs must be at least 1"),
                                            (-3, "--jobs must be at least 1"), (None, "this machine can run at most")])
def test_jobs_beyond_the_machine_are_refused_at_once(tmp_path, jobs, fragment):
    jobs = baselines.usable_jobs("cpu") + 1 if jobs is None else jobs
    started = time.monotonic()
    result = call(cli.reproduce_command, *REPRODUCE, "--epochs", 1, "--jobs", jobs, "--out", tmp_path / "out", prog="ppad-reproduce")
    assert_user_error(result, fragment)
    assert time.monotonic() - started < 10 and not (tmp_path / "out").exists()


def test_jobs_huge_as_a_console_script_is_one_line_within_seconds(tmp_path):
    started = time.monotonic()
    result = subprocess.run([str(BIN / "ppad-reproduce"), *map(str, REPRODUCE), "--jobs", "100000000", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert_user_error(result, "--jobs 100000000: this machine can run at most")
    assert time.monotonic() - started < 30


def _spawned_children(pid):
    "Process ids of the spawned job processes of `pid` (not its resource tracker)."
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit(): continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError: continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline: found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir() or baselines.usable_jobs("cpu") < 2, reason="needs /proc and two CPUs")
def test_a_killed_job_process_is_one_line_naming_its_run_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "out"
    command = [str(BIN / "ppad-reproduce"), *map(str, REPRODUCE), "--epochs", "2", "--jobs", "2", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob("ppad/seed*/run.json")): time.sleep(0.05)
        children = _spawned_children(process.pid)
        assert children, "no job process found"
        os.kill(children[0], signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None: process.kill(); process.wait()
    # the job processes' own warnings (the random CLIP; the standard library's resource tracker after a kill) are not errors
    errors = [line for line in stderr.splitlines() if "Warning: " not in line and not line.startswith(" ")]
    assert process.returncode == 2 and len(errors) == 1, stderr
    assert errors[0].startswith("ppad-reproduce: error: the job process training ppad, seed ") and "(killed by SIGKILL) died; run the same command again" in errors[0]
    assert "BrokenProcessPool" not in stderr and "Traceback" not in stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert again.returncode == 0, again.stderr
    assert (out / "table.md").is_file()


RANK_FAILURES = {
    "before_any_collective": "from ppad_nb import model\n"
                             "def refuse(*a, **k): raise model.PPADError('injected: the learner cannot be read on this rank')\n"
                             "if os.environ['RANK'] == '1': model.PPAD.from_learner = refuse\n",
    "not_a_user_error": "from ppad_nb import evaluate\n"
                        "def broken(*a, **k): raise IndexError('index 1440 is out of bounds')\n"
                        "if os.environ['RANK'] == '1': evaluate.score_images = broken\n",
}


@pytest.mark.parametrize("failure", list(RANK_FAILURES))
def test_an_error_on_one_rank_ends_every_rank_within_seconds(tmp_path, userdir, failure):
    script = tmp_path / "ppad-score-injected.py"
    script.write_text("import os, sys\n" + RANK_FAILURES[failure] + "from ppad_nb import cli\nsys.exit(cli.run_script(cli.score, prog='ppad-score'))\n")
    program = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "0",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", str(script)]
    started = time.monotonic()
    result = subprocess.run(program + [str(a) for a in (*MODEL, "--images", userdir, "--out", tmp_path / "s.csv")],
                            capture_output=True, text=True, timeout=120, env=subprocess_env())
    elapsed = time.monotonic() - started
    ours = [line for line in result.stderr.splitlines() if line.startswith("ppad-score: error:")]
    assert result.returncode != 0 and len(ours) == 1 and "rank 1/2" in ours[0], result.stderr
    assert elapsed < 60 and not (tmp_path / "s.csv").exists(), elapsed
