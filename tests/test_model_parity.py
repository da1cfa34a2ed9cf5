"""The shipped PPAD model (fast paths included: fused attention, cached text features, the autograd split) reproduces
the official code on the parity fixture, through the public API and through ppad-score. Chapter 03 checks the plain
model, with open_clip's own transformer blocks, against the same fixture.

tests/fixtures/parity-tiny/ holds outputs of the official PPAD code (float32, CPU) on a tiny random CLIP in
OpenAI state-dict format and a learner in the release format: per-image region probabilities and scores
(scores.csv) and one training step (train_step.json, train_step_grads.pt).
"""
import csv
import json
import warnings

import pytest
import torch

from conftest import FIXTURES, assert_user_error, run
from ppad_nb.baselines import drop_period
from ppad_nb.data import load_image, to_tensor
from ppad_nb.evaluate import aggregate, read_scores
from ppad_nb.model import PPAD, RandomWeightsWarning, load_clip
from ppad_nb.train import ppad_loss

PARITY = FIXTURES / "parity-tiny"
PROB_COLUMNS = ("p_left", "p_right", "p_upper", "p_lower", "p_whole")


@pytest.fixture(scope="module")
def clip():
    return load_clip(PARITY / "clip_tiny.pt")


@pytest.fixture(scope="module")
def official_scores():
    with open(PARITY / "scores.csv") as f: rows = list(csv.DictReader(f))
    return rows


def images_of(files):
    return torch.stack([to_tensor(load_image(PARITY / "images" / f)) for f in files])


def test_region_probabilities_and_scores_match_official(clip, official_scores):
    model = PPAD(clip).load_learner(PARITY / "learner_tiny.pt").eval()
    with torch.no_grad(): probs = model.region_probs(images_of([r["file"] for r in official_scores]))
    expected = torch.tensor([[float(r[c]) for c in PROB_COLUMNS] for r in official_scores])
    assert (probs - expected).abs().max().item() < 1e-5
    scores = aggregate(probs)
    assert (scores - torch.tensor([float(r["score"]) for r in official_scores])).abs().max().item() < 1e-5
    # the fixture exercises both branches of the rule
    assert 0 < int((probs.max(1).values > 0.8).sum()) < len(official_scores)


def test_forward_gives_the_same_probabilities_per_region(clip, official_scores):
    model = PPAD(clip).load_learner(PARITY / "learner_tiny.pt").eval()
    images = images_of([r["file"] for r in official_scores[:4]])
    with torch.no_grad():
        for region, column in enumerate(PROB_COLUMNS):
            probs = model(images, [region] * 4).softmax(-1)[:, 1]
            expected = torch.tensor([float(r[column]) for r in official_scores[:4]])
            assert (probs - expected).abs().max().item() < 1e-5


def relative(ours, theirs):
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def test_training_step_loss_and_gradients_match_official(clip):
    step = json.loads((PARITY / "train_step.json").read_text())
    model = PPAD(clip).load_learner(PARITY / "learner_tiny.pt").train()
    logits = model(images_of(step["files"]), torch.tensor(step["regions"]))
    loss = ppad_loss(logits, torch.tensor(step["targets"]))
    loss.backward()
    gradients = torch.load(PARITY / "train_step_grads.pt", weights_only=True)
    assert relative(logits.detach(), torch.tensor(step["logits"])) < 1e-5
    assert abs(loss.item() - step["loss"]) / step["loss"] < 1e-5
    assert relative(model.ctx.grad, gradients["ctx"]) < 1e-5
    assert relative(model.mask_embedding.grad, gradients["mask_embedding"]) < 1e-5


def test_ppad_score_reproduces_official_scores_file(tmp_path, official_scores):
    out = tmp_path / "scores.csv"
    result = run("ppad-score", "--clip-weights", PARITY / "clip_tiny.pt", "--learner", PARITY / "learner_tiny.pt",
                 "--images", PARITY / "images", "--out", out, "--batch-size", 5)
    assert result.returncode == 0, result.stderr
    ours, theirs = read_scores(out), read_scores(PARITY / "scores.csv")
    assert ours["files"] == theirs["files"]
    assert abs(ours["scores"] - theirs["scores"]).max() < 1e-5
    assert abs(ours["probs"] - theirs["probs"]).max() < 1e-5


def test_ppad_score_recurses_and_writes_relative_paths(tmp_path, sample):
    folder = tmp_path / "xrays"
    (folder / "a").mkdir(parents=True)
    (folder / "b" / "c").mkdir(parents=True)
    for target, source in [(folder / "a" / "one.png", sample[1].files[0]), (folder / "b" / "c" / "two.png", sample[1].files[-1])]:
        target.write_bytes(source.read_bytes())
    out = tmp_path / "s.csv"
    result = run("ppad-score", "--clip-weights", "random:tiny", "--learner", PARITY / "learner_tiny.pt", "--images", folder, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "warning: random:tiny is a randomly initialised CLIP" in result.stderr
    assert read_scores(out)["files"] == ["a/one.png", "b/c/two.png"]


def test_learner_formats_round_trip(tmp_path, clip):
    model = PPAD(clip).load_learner(PARITY / "learner_tiny.pt")
    model.save_learner(tmp_path / "kit.safetensors")
    model.export_official(tmp_path / "official.pt")
    torch.save(model.learner_checkpoint(), tmp_path / "kit_v1.pt")  # the kit's earlier .pt format stays readable
    for name in ("kit.safetensors", "kit_v1.pt", "official.pt"):
        again = PPAD(clip).load_learner(tmp_path / name)
        assert torch.equal(again.ctx, model.ctx) and torch.equal(again.mask_embedding, model.mask_embedding)
    from safetensors import safe_open
    with safe_open(str(tmp_path / "kit.safetensors"), framework="pt") as f:  # plain safetensors, readable by any framework
        assert sorted(f.keys()) == ["ctx", "mask_embedding"]
        saved = {k: json.loads(v) for k, v in f.metadata().items()}
    assert saved["format"] == "ppad-nb-learner"
    assert saved["clip"]["sha256"] == clip.ppad_source["sha256"]
    assert set(saved["versions"]) == {"ppad_nb", "torch", "open_clip"}
    released = torch.load(tmp_path / "official.pt", weights_only=True)
    assert set(released) == {"prompt_learner_ctx", "image_mask_learner"}


def test_official_release_files_may_carry_other_entries(tmp_path, clip):
    released = torch.load(PARITY / "learner_tiny.pt", weights_only=True)
    released["prompt_learner_ctx"]["token_prefix"] = torch.zeros(2, 1, 64)  # the released files carry such buffers
    released["epoch"] = 99
    torch.save(released, tmp_path / "with_extras.pt")
    model = PPAD(clip).load_learner(tmp_path / "with_extras.pt")
    assert torch.equal(model.ctx, released["prompt_learner_ctx"]["ctx"].half().float())


def test_text_features_cached_until_parameters_change(clip):
    model = PPAD(clip).eval()
    calls = []
    hook = clip.transformer.resblocks[0].ln_1.register_forward_hook(lambda m, inputs, output: calls.append(inputs[0].shape[0]))
    try:
        images = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            first = model.region_probs(images)
            model.region_probs(images)
            assert calls == [10]
            model.ctx.mul_(1.5)
            assert not torch.allclose(model.region_probs(images), first)
        assert calls == [10, 10]
        model.train()
        model(images, [2, 2]).sum().backward()
        assert calls == [10, 10, 2]
    finally:
        hook.remove()


def test_text_cache_follows_every_change_of_ctx(clip, tmp_path):
    """The cache is keyed on the values of ctx and the prompts: an edit in place, a learner loaded, a new ctx tensor and
    other prompts each give features equal to a fresh encode_text."""
    model = PPAD(clip).eval()
    every = torch.arange(5)
    other = PPAD(clip)
    with torch.no_grad(): other.ctx.normal_(std=0.5)
    other.save_learner(tmp_path / "other.safetensors")
    changes = {"edit in place": lambda: model.ctx.add_(1),
               "load_learner": lambda: model.load_learner(tmp_path / "other.safetensors"),
               "load_learner of the release": lambda: model.load_learner(PARITY / "learner_tiny.pt"),
               "new tensor": lambda: setattr(model.ctx, "data", torch.zeros_like(model.ctx)),
               "prompts without the period": lambda: drop_period(model)}
    with torch.no_grad():
        for name, change in changes.items():
            before = model.text_features(every)
            change()
            after = model.text_features(every)
            assert torch.equal(after, model.encode_text(every)), name
            assert not torch.allclose(after, before), name


def test_bad_clip_files(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    (tmp_path / "cut.pt").write_bytes((PARITY / "clip_tiny.pt").read_bytes()[:50_000])
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pt")
    cases = [("notes.pt", "cannot read it as a PyTorch checkpoint"), ("cut.pt", "cannot read it as a PyTorch checkpoint"),
             ("other.pt", "not an OpenAI-format CLIP state dict")]
    for name, message in cases:
        result = run("ppad-score", "--clip-weights", tmp_path / name, "--learner", PARITY / "learner_tiny.pt",
                     "--images", PARITY / "images", "--out", tmp_path / "s.csv")
        assert_user_error(result, tmp_path / name, message)
    result = run("ppad-score", "--clip-weights", PARITY / "learner_tiny.pt", "--learner", PARITY / "learner_tiny.pt",
                 "--images", PARITY / "images", "--out", tmp_path / "s.csv")
    assert_user_error(result, "is a PPAD learner checkpoint, not CLIP weights")
    assert not (tmp_path / "s.csv").exists()


def test_learner_of_wrong_width(tmp_path):
    result = run("ppad-score", "--clip-weights", "random:ViT-B-32", "--learner", PARITY / "learner_tiny.pt",
                 "--images", PARITY / "images", "--out", tmp_path / "s.csv")
    assert_user_error(result, "learner_tiny.pt", "ctx is (16, 64), but this CLIP needs (16, 512)")


def test_score_needs_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("PPAD_CLIP_WEIGHTS", raising=False)
    result = run("ppad-score", "--learner", PARITY / "learner_tiny.pt", "--images", PARITY / "images", "--out", tmp_path / "s.csv")
    assert_user_error(result, "no CLIP weights")


def test_random_clips_warn_and_are_deterministic():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a, b = load_clip("random:tiny"), load_clip("random:tiny")
    assert any(issubclass(w.category, RandomWeightsWarning) for w in caught)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bench_infer_json():
    result = run("ppad-bench", "infer", "--backbone", "random:tiny", "--batch-size", 2, "--repeats", 1, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["bench"] == "infer" and record["batch_size"] == 2
    assert record["ratio"] == record["images_per_s"] / record["bound_images_per_s"]


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_archive_loads_like_the_state_dict(tmp_path, clip):
    "OpenAI's own .pt files are TorchScript archives; their weights load as a plain state dict would."
    traced = torch.jit.trace_module(clip, {"encode_image": (torch.zeros(1, 3, 224, 224),),
                                           "encode_text": (torch.zeros(1, 77, dtype=torch.long),)})
    torch.jit.save(traced, tmp_path / "ViT-tiny.pt")
    loaded = load_clip(tmp_path / "ViT-tiny.pt")
    assert loaded.state_dict().keys() == clip.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), clip.state_dict().values()))


def test_fp32_and_fp16_state_dicts_load_to_float32(tmp_path, clip):
    torch.save({k: v.float() for k, v in clip.state_dict().items()}, tmp_path / "fp32.pt")
    torch.save({f"module.{k}": v.half() for k, v in clip.state_dict().items()}, tmp_path / "fp16-dataparallel.pt")
    for name in ("fp32.pt", "fp16-dataparallel.pt"):
        loaded = load_clip(tmp_path / name)
        assert {p.dtype for p in loaded.parameters()} == {torch.float32}
        assert torch.equal(loaded.visual.proj, clip.visual.proj)  # the fixture's values are fp16-exact
