"""The kit under faults and hostile input (issue 8): one test (or a few) per defect.

Nothing runs from a file, nothing the kit did not make is lost, results are never silently mixed, and every
input, file or argument a user can get wrong ends in one line. Kept fast: the tiny random CLIP, few images,
and the console scripts called in-process (`run_script`) unless a separate process is the point.
"""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import FIXTURES, assert_user_error, call, copy_images, run
from ppad_nb import cli
from ppad_nb.safety import PPADError
from ppad_nb.model import PPAD, RandomWeightsWarning, load_clip, read_checkpoint
from ppad_nb.runs import LEARNER_FILE, train

PARITY = FIXTURES / "parity-tiny"
TINY_RUN = dict(epochs=2, shots=8, batch_size=8, lr=0.01)
pytestmark = pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning", "ignore::FutureWarning")





@pytest.fixture(scope="module")
def images(tmp_path_factory, sample):
    "Six real X-rays in a folder."
    return copy_images(sample[1].files[:3] + sample[1].files[-3:], tmp_path_factory.mktemp("images") / "xrays")[0].parent


# ---------------------------------------------------------------------------------------------------------------
# 1. No code runs from a checkpoint: TorchScript archives are read, never loaded with torch.jit.load

class Holder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor: return x


class Hostile(nn.Module):
    "A scripted module whose `__setstate__`, which `torch.jit.load` runs, creates and writes a file."
    def __init__(self, target: str):
        super().__init__()
        self.w, self.target = nn.Parameter(torch.ones(2)), target

    @torch.jit.export
    def __getstate__(self): return (self.w, self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
        self.target, self.training = state[1], state[2]
        written = torch.from_file(state[1], shared=True, size=4, dtype=torch.uint8)
        written.fill_(33)
        self.w = state[0] + written.float().sum() * 0

    def forward(self, x: torch.Tensor) -> torch.Tensor: return x * self.w


def torchscript_archive(path: Path, state: dict, hostile_target=None) -> Path:
    "A real TorchScript archive (torch.jit.script + save) whose tensors are `state`, OpenAI-style; optionally with a hostile module."
    root = Holder()
    for name, value in state.items():
        *parents, leaf = name.split(".")
        module = root
        for part in parents:
            if part not in module._modules: module.add_module(part, Holder())
            module = module._modules[part]
        module.register_buffer(leaf, value.detach().clone())
    if hostile_target is not None: root.add_module("hostile", Hostile(str(hostile_target)))
    torch.jit.script(root).save(str(path))
    return path


@pytest.fixture(scope="module")
def archives(tmp_path_factory, tiny):
    "A tiny CLIP as a TorchScript archive, the same with a hostile module, and the file the hostile one writes when loaded."
    folder = tmp_path_factory.mktemp("torchscript")
    target = folder / "written-by-the-archive"
    state = {k: v.half() for k, v in tiny.state_dict().items()}  # OpenAI's releases hold float16
    return (torchscript_archive(folder / "clip_ts.pt", state), torchscript_archive(folder / "hostile.pt", state, target), target)


def test_the_hostile_archive_really_runs_code_when_loaded_with_jit(archives, tmp_path):
    "The test archive is a real threat: torch.jit.load (in a throw-away process) runs its __setstate__."
    _, hostile, target = archives
    probe = subprocess.run([sys.executable, "-c", "import sys, torch; torch.jit.load(sys.argv[1])", str(hostile)], capture_output=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    assert target.read_bytes() == b"!!!!"
    target.unlink()


def test_torchscript_clip_is_read_without_running_it(archives, tiny):
    plain, hostile, target = archives
    for archive in (plain, hostile):
        clip = load_clip(archive)
        for name, value in tiny.state_dict().items():
            assert torch.equal(clip.state_dict()[name], value.half().float()), name
    assert not target.exists()


def test_no_console_path_runs_the_hostile_archive(archives, tiny, tmp_path, images):
    plain, hostile, target = archives
    # --clip-weights: the archive's tensors make a working CLIP
    assert call(cli.score, "--clip-weights", hostile, "--learner", PARITY / "learner_tiny.pt", "--images", images, "--out", tmp_path / "a.csv").returncode == 0
    # --learner: read, found not to be a learner
    assert_user_error(call(cli.score, "--clip-weights", plain, "--learner", hostile, "--images", images, "--out", tmp_path / "b.csv"), "not a PPAD learner")
    # a run's learner file, and the CLIP its run.json names
    run_dir = tmp_path / "run"
    train("demo", clip=tiny, out=run_dir, progress=False, **TINY_RUN)
    learner = (run_dir / LEARNER_FILE).read_bytes()
    (run_dir / LEARNER_FILE).write_bytes(hostile.read_bytes())
    assert_user_error(call(cli.evaluate_command, "--run", run_dir, "--out", tmp_path / "r1"), "not a PPAD learner")
    (run_dir / LEARNER_FILE).write_bytes(learner)
    state = json.loads((run_dir / "run.json").read_text())
    state["clip"] = {"spec": str(hostile), "sha256": None}
    (run_dir / "run.json").write_text(json.dumps(state))
    assert call(cli.evaluate_command, "--run", run_dir, "--out", tmp_path / "r3").returncode == 0
    # ppad-reproduce
    assert call(cli.reproduce_command, "--preset", "demo", "--clip-weights", hostile, "--methods", "chexzero", "--out", tmp_path / "rep").returncode == 0
    # ppad-train
    assert call(cli.train_command, "--preset", "demo", "--clip-weights", hostile, "--epochs", 1, "--shots", 8, "--batch-size", 8,
                "--out", tmp_path / "t").returncode == 0
    assert not target.exists()


def test_kit_learners_are_safetensors_and_old_pt_learners_still_load(tiny, tmp_path):
    result = train("demo", clip=tiny, out=tmp_path / "run", progress=False, **TINY_RUN)
    from safetensors import safe_open
    with safe_open(str(tmp_path / "run" / LEARNER_FILE), framework="pt") as f:
        assert sorted(f.keys()) == ["ctx", "mask_embedding"]
        assert json.loads(f.metadata()["config"])["n_ctx"] == 16
    torch.save(result.model.learner_checkpoint(), tmp_path / "old_kit.pt")
    result.model.export_official(tmp_path / "official.pt")
    for path in (tmp_path / "run" / LEARNER_FILE, tmp_path / "old_kit.pt", tmp_path / "official.pt"):
        again = PPAD.from_learner(tiny, path)
        assert torch.equal(again.ctx, result.model.ctx.detach().half().float() if path.name == "official.pt" else result.model.ctx)


# ---------------------------------------------------------------------------------------------------------------
# 2. ppad-demo --force replaces only what the demo made

def test_demo_never_removes_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "run" / "thesis.tex").write_text("years of work")
    for extra in ([], ["--force"]):
        assert_user_error(call(cli.demo_command, "--out", out, "--clip-weights", "random:tiny", "--epochs", 1, *extra),
                          out / "run", "was not made by ppad-demo")
    assert (out / "run" / "thesis.tex").read_text() == "years of work"


def test_demo_force_replaces_its_own_output(tmp_path):
    out = tmp_path / "out"
    assert call(cli.demo_command, "--out", out, "--clip-weights", "random:tiny", "--epochs", 1).returncode == 0
    (out / "notes.txt").write_text("mine")
    assert_user_error(call(cli.demo_command, "--out", out, "--clip-weights", "random:tiny", "--epochs", 1), "exists from an earlier demo; pass --force")
    assert call(cli.demo_command, "--out", out, "--clip-weights", "random:tiny", "--epochs", 1, "--force").returncode == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "report" / "metrics.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# 3. ppad-reproduce reuses a result only when everything that made it is the same

def test_reproduce_refuses_to_mix_settings(tmp_path, tiny):
    from ppad_nb.baselines import reproduce
    out, small = tmp_path / "rep", dict(shots=8, batch_size=8)
    reproduce("demo", clip=tiny, seeds=(0,), methods=("ppad", "chexzero"), out=out, quiet=True, epochs=1, **small)
    with pytest.raises(PPADError, match="ppad/seed0: was made with epochs = 1, not 2; pass --overwrite"):
        reproduce("demo", clip=tiny, seeds=(0, 1), methods=("ppad",), out=out, quiet=True, epochs=2, **small)
    assert not (out / "ppad" / "seed1").exists()  # refused before any work
    wide = load_clip("random:ViT-B-32")
    with pytest.raises(PPADError, match="was made with the CLIP random:tiny"):
        reproduce("demo", clip=wide, seeds=(0,), methods=("chexzero",), out=out, quiet=True, epochs=1, **small)
    # --overwrite recomputes, and the table then holds only the new settings
    results = reproduce("demo", clip=tiny, seeds=(0, 1), methods=("ppad",), out=out, quiet=True, overwrite=True, epochs=2, **small)
    assert len(results["ppad"]) == 2
    for seed in (0, 1): assert json.loads((out / "ppad" / f"seed{seed}" / "run.json").read_text())["preset"]["epochs"] == 2
    assert "randomly initialised CLIP" in (out / "table.md").read_text()


def test_reproduce_cli_refuses_another_clip_in_one_line(tmp_path):
    args = ["--preset", "demo", "--methods", "chexzero", "--out", tmp_path / "rep"]
    assert call(cli.reproduce_command, *args, "--clip-weights", "random:tiny").returncode == 0
    assert_user_error(call(cli.reproduce_command, *args, "--clip-weights", PARITY / "clip_tiny.pt"), "was made with the CLIP random:tiny", "--overwrite")
    assert call(cli.reproduce_command, *args, "--clip-weights", PARITY / "clip_tiny.pt", "--overwrite").returncode == 0
    assert "randomly initialised" not in (tmp_path / "rep" / "table.md").read_text()


# ---------------------------------------------------------------------------------------------------------------
# 4. ppad-train --resume refuses a different CLIP

def test_resume_refuses_another_clip(tmp_path):
    args = ["--preset", "demo", "--epochs", 2, "--shots", 8, "--batch-size", 8, "--out", tmp_path / "run"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        train("demo", clip=load_clip("random:tiny"), out=tmp_path / "run", stop_after=1, progress=False, epochs=2, shots=8, batch_size=8)
    assert_user_error(call(cli.train_command, *args, "--clip-weights", PARITY / "clip_tiny.pt", "--resume"), "was made with the CLIP random:tiny, not ")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["clip"]["spec"] == "random:tiny"
    assert call(cli.train_command, *args, "--clip-weights", "random:tiny", "--resume").returncode == 0


# ---------------------------------------------------------------------------------------------------------------
# 5. One process per run folder

def test_second_process_on_a_run_folder_is_refused_and_the_lock_dies_with_its_process(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ppad_nb.safety import folder_lock\n"
                               "with folder_lock(sys.argv[1], 'ppad-train --out run'): print('held', flush=True); time.sleep(120)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 8, "--batch-size", 8, "--out", out]
        assert_user_error(run("ppad-train", *args), out, f"is in use by pid {holder.pid} on", "(ppad-train --out run)")
    finally:
        holder.kill(); holder.wait()
    assert call(cli.train_command, *args).returncode == 0
    assert not (out / ".ppad-lock").exists()


# ---------------------------------------------------------------------------------------------------------------
# 6. NaN is caught: in arguments, weights, learners, checkpoints and the loss

def test_nan_learning_rate_and_weights_are_refused(tmp_path, tiny, images):
    assert_user_error(call(cli.train_command, "--preset", "demo", "--clip-weights", "random:tiny", "--lr", "nan", "--out", tmp_path / "a"), "lr", "finite number")
    assert not (tmp_path / "a").exists()
    broken = {k: v.clone() for k, v in torch.load(PARITY / "clip_tiny.pt", weights_only=True).items()}
    broken["visual.proj"][0, 0] = float("nan")
    torch.save(broken, tmp_path / "nan_clip.pt")
    assert_user_error(call(cli.score, "--clip-weights", tmp_path / "nan_clip.pt", "--learner", PARITY / "learner_tiny.pt", "--images", images,
                           "--out", tmp_path / "s.csv"), "visual.proj", "NaN or infinite")
    model = PPAD(tiny)
    with torch.no_grad(): model.ctx[0, 0] = float("nan")
    model.save_learner(tmp_path / "nan_learner.safetensors")
    assert_user_error(call(cli.score, "--clip-weights", "random:tiny", "--learner", tmp_path / "nan_learner.safetensors", "--images", images,
                           "--out", tmp_path / "s.csv"), "ctx", "NaN or infinite")
    assert not (tmp_path / "s.csv").exists()


def test_damaged_checkpoint_is_refused_on_resume(tmp_path, tiny):
    out = tmp_path / "run"
    train("demo", clip=tiny, out=out, stop_after=1, progress=False, **TINY_RUN)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    checkpoint["mask_embedding"].view(-1)[7] = checkpoint["mask_embedding"].view(-1)[7] * 2  # a flipped exponent bit, say
    torch.save(checkpoint, out / "checkpoint.pt")
    with pytest.raises(PPADError, match="tensors changed after it was written"):
        train("demo", clip=tiny, out=out, resume=True, progress=False, **TINY_RUN)
    del checkpoint["digest"]
    checkpoint["ctx"][0, 0] = float("nan")
    torch.save(checkpoint, out / "checkpoint.pt")
    with pytest.raises(PPADError, match="ctx .* NaN or infinite"):
        train("demo", clip=tiny, out=out, resume=True, progress=False, **TINY_RUN)


def test_training_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_checkpoint(tmp_path, tiny):
    out = tmp_path / "run"
    train("demo", clip=tiny, out=out, stop_after=1, progress=False, **{**TINY_RUN, "epochs": 3})
    good = (out / "checkpoint.pt").read_bytes()
    # continue with the same settings but a loss that turns NaN: poison the data the model sees
    original = torch.nn.functional.binary_cross_entropy_with_logits
    try:
        torch.nn.functional.binary_cross_entropy_with_logits = lambda logits, targets: original(logits, targets) * float("nan")
        with pytest.raises(PPADError, match=r"training stopped at iteration 1 \(epoch 2\): the loss is nan; the last good checkpoint \(epoch 1\) is kept"):
            train("demo", clip=tiny, out=out, resume=True, progress=False, **{**TINY_RUN, "epochs": 3})
    finally:
        torch.nn.functional.binary_cross_entropy_with_logits = original
    assert (out / "checkpoint.pt").read_bytes() == good
    state = json.loads((out / "run.json").read_text())
    assert (state["finished"], state["epochs_done"]) == (False, 1) and not (out / LEARNER_FILE).exists()


def test_exploding_learning_rate_ends_with_an_error_not_a_finished_run(tmp_path):
    result = call(cli.train_command, "--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 3, "--shots", 8, "--batch-size", 4,
                  "--lr", "1e38", "--out", tmp_path / "run")
    assert_user_error(result, "training stopped at iteration", "Lower --lr")
    assert not json.loads((tmp_path / "run" / "run.json").read_text())["finished"]


# ---------------------------------------------------------------------------------------------------------------
# 7. Output failures: checked before the work, one line, long names work

def test_output_checked_before_the_work(tmp_path, images):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    # the CLIP file does not exist either: the output is checked first, before anything is loaded
    assert_user_error(call(cli.score, "--clip-weights", tmp_path / "missing.pt", "--learner", PARITY / "learner_tiny.pt", "--images", images,
                           "--out", tmp_path / "blocker" / "s.csv"), tmp_path / "blocker", "is a file where a folder should be")
    assert_user_error(call(cli.train_command, "--preset", "demo", "--clip-weights", tmp_path / "missing.pt", "--out", tmp_path / "blocker" / "run"),
                      "is a file where a folder should be")
    assert_user_error(call(cli.evaluate_command, "--learner", PARITY / "learner_tiny.pt", "--clip-weights", tmp_path / "missing.pt",
                           "--preset", "demo", "--out", tmp_path / "blocker"), "exists and is not a folder")
    assert_user_error(call(cli.synth, images, "--out", tmp_path / ("x" * 256 + ".png")), "longer than 255 bytes")


def test_names_of_242_to_255_bytes_can_be_written(tmp_path, images):
    for length in (242, 255):
        out = tmp_path / ("s" * (length - 4) + ".png")
        assert call(cli.synth, images, "--out", out, "--count", 1).returncode == 0
        assert out.read_bytes()[:4] == b"\x89PNG"
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [10, 242, 255]  # no temporary left; .ppad-made lists both


def test_disk_full_is_one_line_and_keeps_the_old_file(tmp_path, images):
    out = tmp_path / "grid.png"
    assert call(cli.synth, images, "--out", out, "--count", 1).returncode == 0  # a grid of the kit: --force may replace it
    previous = out.read_bytes()
    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # files may not grow beyond 20 kB: as a full disk
    result = subprocess.run([str(Path(sys.executable).parent / "ppad-synth"), str(images), "--out", str(out), "--count", "8", "--force"],
                            capture_output=True, text=True, preexec_fn=small_disk, timeout=300)
    assert_user_error(result, out, "cannot write")
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ppad-made", "grid.png"]


# ---------------------------------------------------------------------------------------------------------------
# 8. File names that are not UTF-8

def test_non_utf8_file_names_are_written_byte_for_byte(tmp_path, sample):
    from ppad_nb.evaluate import read_scores
    folder = tmp_path / "odd"
    folder.mkdir()
    raw = b"caf\xe9-\xff.png"  # Latin-1 and a stray byte: not UTF-8
    (folder / os.fsdecode(raw)).write_bytes(sample[1].files[0].read_bytes())
    (folder / "plain.png").write_bytes(sample[1].files[1].read_bytes())
    result = call(cli.score, "--clip-weights", PARITY / "clip_tiny.pt", "--learner", PARITY / "learner_tiny.pt", "--images", folder, "--out", tmp_path / "s.csv")
    assert result.returncode == 0, result.stderr
    assert raw in (tmp_path / "s.csv").read_bytes()
    assert read_scores(tmp_path / "s.csv")["files"] == [os.fsdecode(raw), "plain.png"]


# ---------------------------------------------------------------------------------------------------------------
# 9. ppad-score builds the model the learner records

@pytest.mark.parametrize("options", [dict(position_names=("",) * 5, image_prompt=False), dict(position_names=("",) * 5),
                                     dict(image_prompt=False), dict(n_ctx=8)], ids=["coop", "no_position", "no_image_prompt", "n_ctx8"])
def test_score_accepts_every_learner_evaluate_accepts(tmp_path, options, images):
    from ppad_nb.data import list_images
    from ppad_nb.evaluate import read_scores, score_images
    clip = load_clip(PARITY / "clip_tiny.pt")
    torch.manual_seed(1)
    model = PPAD(clip, **options)
    model.save_learner(tmp_path / "learner.safetensors")
    result = call(cli.score, "--clip-weights", PARITY / "clip_tiny.pt", "--learner", tmp_path / "learner.safetensors", "--images", images,
                  "--out", tmp_path / "s.csv")
    assert result.returncode == 0, result.stderr
    expected = score_images(model, list_images(images, recursive=True), progress=False)["scores"]
    np.testing.assert_allclose(read_scores(tmp_path / "s.csv")["scores"], expected, atol=1e-7)


def test_a_real_mismatch_says_what_was_expected_and_found(tmp_path, images):
    assert_user_error(call(cli.score, "--clip-weights", "random:ViT-B-32", "--learner", PARITY / "learner_tiny.pt", "--images", images,
                           "--out", tmp_path / "s.csv"), "ctx is (16, 64), but this CLIP needs (16, 512)")


# ---------------------------------------------------------------------------------------------------------------
# 10. No dead-end run folders

def test_argument_errors_create_nothing(tmp_path):
    base = ["--preset", "demo", "--clip-weights", "random:tiny"]
    for i, extra in enumerate((["--batch-size", 0], ["--epochs", 0], ["--shots", 0], ["--workers", -1], ["--seed", -1])):
        assert_user_error(call(cli.train_command, *base, *extra, "--out", tmp_path / f"r{i}"))
    assert list(tmp_path.iterdir()) == []


def test_run_killed_before_its_first_checkpoint_restarts_cleanly(tmp_path, tiny):
    out = tmp_path / "run"
    train("demo", clip=tiny, out=out, stop_after=1, progress=False, **TINY_RUN)
    # what a kill before the first checkpoint leaves: run.json at epoch 0, shots.csv, no checkpoint
    (out / "checkpoint.pt").unlink()
    state = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**state, "epochs_done": 0, "iterations": 0, "final_loss": None}))
    args = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 2, "--shots", 8, "--batch-size", 8, "--lr", 0.01, "--out", out]
    assert call(cli.train_command, *args).returncode == 0
    assert json.loads((out / "run.json").read_text())["finished"]


# ---------------------------------------------------------------------------------------------------------------
# 11. The remaining tracebacks are one line

@pytest.mark.parametrize("extra, fragments", [
    (["--seed", -1], ["--seed must be at least 0"]), (["--seed", 2**64], ["--seed must be at most"]),
    (["--lr", -1], ["lr", "must be more than 0"]), (["--device", "tpu"], ["not a device name"]),
    (["--device", "mps"], ["mps"]), (["--clip-weights", "openclip:RN50:"], ["expected openclip:MODEL:WEIGHTS_FILE"]),
    (["--clip-weights", "openclip:ViT-B-32:openai"], ["must be a local file", "never downloads"])])
def test_bad_arguments_are_one_line(tmp_path, extra, fragments):
    args = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--out", tmp_path / "run", *extra]
    assert_user_error(call(cli.train_command, *args), *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    assert_user_error(call(cli.train_command, "--preset", "demo", "--clip-weights", "random:tiny", "--device", "cuda", "--out", tmp_path / "r"), "no CUDA GPU")


def test_damaged_run_files_are_one_line(tmp_path, tiny):
    out = tmp_path / "run"
    train("demo", clip=tiny, out=out, stop_after=1, progress=False, **TINY_RUN)
    args = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 2, "--shots", 8, "--batch-size", 8, "--lr", 0.01, "--out", out, "--resume"]
    good = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(os.urandom(2000))
    assert_user_error(call(cli.train_command, *args), "checkpoint.pt")
    (out / "checkpoint.pt").write_bytes(good)
    (out / "run.json").write_bytes(b"\x89\xff\x00binary")
    assert_user_error(call(cli.train_command, *args), "run.json", "not valid JSON")
    assert_user_error(call(cli.evaluate_command, "--run", out), "run.json", "not valid JSON")
    (out / "run.json").write_text("[1, 2]")
    assert_user_error(call(cli.train_command, *args), "run.json", "not a run record")


def test_damaged_metrics_json_is_recomputed_by_reproduce(tmp_path, tiny):
    from ppad_nb.baselines import reproduce
    out = tmp_path / "rep"
    reproduce("demo", clip=tiny, methods=("chexzero",), out=out, quiet=True)
    (out / "chexzero" / "report" / "metrics.json").write_bytes(b"\xff{not json")
    log = io.StringIO()
    with contextlib.redirect_stdout(log): reproduce("demo", clip=tiny, methods=("chexzero",), out=out)
    assert "chexzero: evaluated" in log.getvalue()
    assert json.loads((out / "chexzero" / "report" / "metrics.json").read_text())["method"] == "chexzero"
    from ppad_nb.reports import read_report
    (out / "chexzero" / "report" / "metrics.json").write_bytes(b"\xff{not json")
    with pytest.raises(PPADError, match="metrics.json: is damaged"): read_report(out / "chexzero" / "report")


@pytest.mark.parametrize("content, fragments", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", ["not a text settings file"]),
    (None, ["class_names", "needs two class words"]), ("momentum", ["momentum", "must be at least 0"])])
def test_bad_settings_files_are_one_line(tmp_path, content, fragments):
    from ppad_nb.config import settings_path
    text = settings_path().read_text()
    settings = tmp_path / "settings.ini"
    if isinstance(content, bytes): settings.write_bytes(content)
    elif content is None: settings.write_text(text.replace("class_names = normal, pneumonia", "class_names = normal"))
    else: settings.write_text(text.replace("momentum = 0.9", "momentum = -0.9"))
    assert_user_error(call(cli.train_command, "--preset", "demo", "--clip-weights", "random:tiny", "--settings", settings, "--out", tmp_path / "r"), *fragments)
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------------------------
# 12. Smaller points

def test_files_named_like_temporaries_are_never_deleted(tmp_path, tiny):
    "The kit deletes only temporaries this process made, by exact name: a leftover of a killed run and the user's look the same."
    out = tmp_path / "run"
    train("demo", clip=tiny, out=out, stop_after=1, progress=False, **TINY_RUN)
    names = (".ppad-tmp-k1ll3d00", ".checkpoint.pt.ab12cd34.tmp", ".draft.abcdefgh.tmp", ".ppad-tmp-notes", "my-notes.tmp")
    for name in names: (out / name).write_text(f"{name}: the user's")
    train("demo", clip=tiny, out=out, resume=True, progress=False, **TINY_RUN)
    assert all((out / name).read_text() == f"{name}: the user's" for name in names)


def test_overwrite_removes_the_stale_report_but_nothing_foreign(tmp_path, tiny):
    out = tmp_path / "run"
    train("demo", clip=tiny, out=out, progress=False, **TINY_RUN)
    assert call(cli.evaluate_command, "--run", out).returncode == 0
    (out / "report" / "my-analysis.ipynb").write_text("{}")
    train("demo", clip=tiny, out=out, overwrite=True, progress=False, **TINY_RUN)
    assert sorted(p.name for p in (out / "report").iterdir()) == [".ppad-made", "my-analysis.ipynb"]


def test_partial_report_is_recomputed(tmp_path, tiny):
    from ppad_nb.baselines import reproduce
    out = tmp_path / "rep"
    reproduce("demo", clip=tiny, methods=("chexzero",), out=out, quiet=True)
    (out / "chexzero" / "report" / "curves.png").unlink()
    log = io.StringIO()
    with contextlib.redirect_stdout(log): reproduce("demo", clip=tiny, methods=("chexzero",), out=out)
    assert "chexzero: evaluated" in log.getvalue() and (out / "chexzero" / "report" / "curves.png").is_file()


def test_exif_orientation_is_applied(tmp_path, sample):
    from ppad_nb.data import load_image
    upright = Image.open(sample[1].files[0]).convert("L").resize((300, 200))
    rotated = upright.transpose(Image.Transpose.ROTATE_270)  # stored sideways (turned clockwise) ...
    exif = Image.Exif()
    exif[0x0112] = 8  # ... with the tag that says: turn it back counter-clockwise to view
    rotated.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    upright.save(tmp_path / "upright.jpg", quality=95)
    difference = np.abs(load_image(tmp_path / "sideways.jpg").astype(float) - load_image(tmp_path / "upright.jpg").astype(float)).mean()
    assert difference < 3, difference


def test_openclip_specs_never_touch_the_network(monkeypatch):
    import socket
    def no_network(*args, **kwargs): raise AssertionError("the network was used")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(PPADError, match="must be a local file"): load_clip("openclip:ViT-B-32-quickgelu:openai")


def test_synth_holds_the_grid_not_the_tiles(tmp_path, images):
    "The tiles (NumPy arrays, traced by tracemalloc) are pasted into the grid one by one: their memory stays flat with the count."
    import tracemalloc
    from ppad_nb.data import list_images
    from ppad_nb import reports
    files = list_images(images)
    peaks = []
    for count in (4, 32):
        tracemalloc.start()
        reports.synthesize_grid(files, count, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1]); tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks
    assert call(cli.synth, images, "--out", tmp_path / "grid.png", "--count", 32, "--seed", 3).returncode == 0
    grid, _ = reports.synthesize_grid(files, 32, seed=3, progress=False)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grid.png").convert("RGB")), np.asarray(grid))