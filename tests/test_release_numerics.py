"""The released code's exact numerics, through the public API and the console scripts.

tests/fixtures/release/ holds outputs of the official PPAD code (github.com/sunzc-sunny/PPAD at 46b077a, CPU) on the
parity fixture's tiny CLIP, learner and images: four float32 training steps (train_steps.pt) and the model as it
runs in float16 (fp16.pt: region probabilities, scores, and one float16 SGD step). See its README.
"""
import csv
import json
import re
import warnings

import pytest
import torch

from conftest import FIXTURES, assert_user_error, run
from ppad_nb.data import load_image, to_tensor
from ppad_nb.evaluate import read_scores
from ppad_nb.model import PPAD, load_clip
from ppad_nb.train import fit

PARITY, RELEASE = FIXTURES / "parity-tiny", FIXTURES / "release"


def images_of(files):
    return torch.stack([to_tensor(load_image(PARITY / "images" / f)) for f in files])


def batches(plan):
    return [(images_of(p["files"]), torch.tensor(p["regions"]), torch.tensor(p["targets"])) for p in plan]


def relative(ours, theirs):
    return ((ours.float() - theirs.float()).abs().max() / theirs.float().abs().max()).item()


def converted_by_release(key):
    "METHOD.md: what OpenAI's convert_weights turns into float16 (Conv/Linear weights and biases, attention projections, the two projections)."
    return (key in ("visual.conv1.weight", "visual.proj", "text_projection")
            or re.search(r"\.attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)$", key) is not None
            or re.search(r"\.mlp\.c_(fc|proj)\.(weight|bias)$", key) is not None)


@pytest.fixture(scope="module")
def float32_files(tmp_path_factory):
    "The parity CLIP in float32 with values float16 cannot hold; and the same file as the release would hold it."
    folder = tmp_path_factory.mktemp("clip32")
    state = torch.load(PARITY / "clip_tiny.pt", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    full = {k: v.float() + 1e-4 * torch.rand(v.shape, generator=generator) for k, v in state.items()}  # off the float16 grid
    held = {k: v.half() if converted_by_release(k) else v for k, v in full.items()}
    torch.save(full, folder / "clip32.pt")
    torch.save(held, folder / "clip_held.pt")
    return folder / "clip32.pt", folder / "clip_held.pt", full


def test_load_clip_rounds_exactly_the_tensors_the_release_converts(float32_files):
    path, _, full = float32_files
    loaded = load_clip(path).state_dict()
    converted = [k for k in full if converted_by_release(k)]
    assert len(converted) == 1 + 2 + 2 * 2 * (4 + 4)  # conv1, the two projections, per layer 4 attention + 4 MLP tensors
    for key, value in full.items():
        expected = value.half().float() if converted_by_release(key) else value
        assert torch.equal(loaded[key], expected), key
        assert torch.equal(loaded[key], value) == (not converted_by_release(key)), key  # the values were off the grid
    kept = load_clip(path, round_like_release=False).state_dict()
    assert all(torch.equal(kept[k], v) for k, v in full.items())
    assert load_clip(path).ppad_source["rounded_like_release"] is True


def test_float32_file_scores_exactly_like_the_release_held_copy(float32_files, tmp_path):
    path, held, _ = float32_files
    outputs = []
    for weights in (path, held):
        out = tmp_path / f"{weights.stem}.csv"
        result = run("ppad-score", "--clip-weights", weights, "--learner", PARITY / "learner_tiny.pt", "--images", PARITY / "images", "--out", out)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]  # to the last printed digit
    model = PPAD(load_clip(path, round_like_release=False)).load_learner(PARITY / "learner_tiny.pt")
    with torch.no_grad(): unrounded = model.region_probs(images_of(sorted(p.name for p in (PARITY / "images").iterdir())))
    assert (unrounded.numpy() - read_scores(tmp_path / "clip32.csv")["probs"]).__abs__().max() > 1e-6  # the rounding is seen


def test_fit_reproduces_the_released_training_steps():
    released = torch.load(RELEASE / "train_steps.pt", weights_only=True)
    model = PPAD(load_clip(PARITY / "clip_tiny.pt")).load_learner(PARITY / "learner_tiny.pt")  # rounded to float16, as released
    after = []
    losses = fit(model, batches(released["plan"]), lr=released["lr"], momentum=released["momentum"], t_max=released["t_max"],
                 on_step=lambda i, loss, rate: after.append((model.ctx.detach().clone(), model.mask_embedding.detach().clone())))
    assert len(losses) == len(released["steps"]) == 4
    for loss, (ctx, mask_embedding), step in zip(losses, after, released["steps"]):
        assert abs(loss - step["loss"]) < 1e-5
        assert relative(ctx, step["ctx"]) < 1e-5
        assert relative(mask_embedding, step["mask_embedding"]) < 1e-5


def test_fit_follows_the_released_schedule():
    released = torch.load(RELEASE / "train_steps.pt", weights_only=True)
    model = PPAD(load_clip(PARITY / "clip_tiny.pt")).load_learner(PARITY / "learner_tiny.pt")
    from ppad_nb.train import prompt_optimizer
    optimizer, scheduler = prompt_optimizer(model, released["lr"], released["momentum"], released["t_max"])
    rates = []
    fit(model, batches(released["plan"][:2]), optimizer=optimizer, scheduler=scheduler, on_step=lambda i, loss, rate: rates.append(scheduler.get_last_lr()[0]))
    assert rates == pytest.approx([s["lr_after"] for s in released["steps"][:2]], rel=1e-12)


@pytest.fixture(scope="module")
def fp16():
    return torch.load(RELEASE / "fp16.pt", weights_only=True)


def test_release_precision_reproduces_the_float16_model(fp16):
    model = PPAD(load_clip(PARITY / "clip_tiny.pt", precision="release")).load_learner(PARITY / "learner_tiny.pt")
    assert model.ctx.dtype == model.mask_embedding.dtype == model.clip.visual.conv1.weight.dtype == torch.float16
    assert model.clip.ln_final.weight.dtype == model.clip.positional_embedding.dtype == torch.float32  # as convert_weights leaves them
    with torch.no_grad(): probs = model.region_probs(images_of(fp16["files"]))
    assert probs.dtype == torch.float16
    assert (probs.float() - fp16["region_probs"].float()).abs().max().item() < 2e-3


def test_release_precision_sgd_step_loses_the_same_updates(fp16):
    model = PPAD(load_clip(PARITY / "clip_tiny.pt", precision="release")).load_learner(PARITY / "learner_tiny.pt")
    before = model.ctx.detach().clone()
    batch = fp16["step"]["batch"]
    losses = fit(model, [(images_of(batch["files"]), torch.tensor(batch["regions"]), torch.tensor(batch["targets"]))])
    assert model.ctx.dtype == torch.float16
    changed, theirs = model.ctx.detach() != before, fp16["step"]["ctx"] != before
    assert 0 < int(theirs.sum()) < theirs.numel() // 2  # the fixture's point: most of the update is lost in float16
    assert torch.equal(changed, theirs)
    assert abs(losses[0] - fp16["step"]["loss"]) / fp16["step"]["loss"] < 2e-3


def test_ppad_score_precision_release_reproduces_the_float16_scores(tmp_path, fp16):
    out = tmp_path / "scores.csv"
    result = run("ppad-score", "--clip-weights", PARITY / "clip_tiny.pt", "--learner", PARITY / "learner_tiny.pt", "--images", PARITY / "images",
                 "--out", out, "--precision", "release")
    assert result.returncode == 0, result.stderr
    ours = read_scores(out)
    assert ours["files"] == fp16["files"]
    assert abs(ours["scores"] - fp16["scores"].float().numpy()).max() < 2e-3
    assert abs(ours["probs"] - fp16["region_probs"].float().numpy()).max() < 2e-3


def test_bf16_keeps_prompts_and_optimiser_in_float32_and_scores_close():
    fp32 = PPAD(load_clip(PARITY / "clip_tiny.pt")).load_learner(PARITY / "learner_tiny.pt")
    bf16 = PPAD(load_clip(PARITY / "clip_tiny.pt", precision="bf16")).load_learner(PARITY / "learner_tiny.pt")
    images = images_of(json.loads((PARITY / "train_step.json").read_text())["files"])
    with torch.no_grad(): p32, p16 = fp32.region_probs(images), bf16.region_probs(images)
    assert p16.dtype == torch.float32 and 0 < (p16 - p32).abs().max().item() < 5e-2  # bfloat16 differs, a little
    from ppad_nb.train import prompt_optimizer
    optimizer, scheduler = prompt_optimizer(bf16)
    fit(bf16, [(images, torch.arange(8) % 5, torch.eye(2)[torch.arange(8) % 2])], optimizer=optimizer, scheduler=scheduler)
    assert bf16.ctx.dtype == bf16.mask_embedding.dtype == torch.float32
    assert {s["momentum_buffer"].dtype for s in optimizer.state.values()} == {torch.float32}


def test_precision_is_checked_and_recorded(tmp_path):
    result = run("ppad-score", "--clip-weights", PARITY / "clip_tiny.pt", "--learner", PARITY / "learner_tiny.pt", "--images", PARITY / "images",
                 "--out", tmp_path / "s.csv", "--precision", "fp8")
    assert result.returncode == 2 and "invalid choice: 'fp8'" in result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ppad_nb.runs import train
        train("demo", clip=load_clip("random:tiny", precision="release"), out=tmp_path / "run", shots=4, batch_size=4, epochs=2, stop_after=1, progress=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["clip"]["precision"] == "release"
    result = run("ppad-train", "--preset", "demo", "--clip-weights", "random:tiny", "--shots", 4, "--batch-size", 4, "--epochs", 2,
                 "--out", tmp_path / "run", "--resume")
    assert_user_error(result, "was made with the CLIP random:tiny (precision release), not fp32")
