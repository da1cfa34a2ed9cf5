"""The released ablations: "without SAS" patches from all normal training images (or only the shots), recorded in the
run; the VinDr-CXR zero-shot baseline's prompts without the period."""
import json
import warnings

import numpy as np
import pytest
import torch
from open_clip import tokenize

from conftest import copy_images
from ppad_nb.baselines import build_model, reproduce
from ppad_nb.safety import PPADError
from ppad_nb.data import bundled_sample, load_image, read_dataset, to_tensor
from ppad_nb.model import RandomWeightsWarning, load_clip
from ppad_nb.runs import train
from ppad_nb.train import TrainingSet



def pasted(dataset, samples=40):
    "The anomalies of the first `samples` samples of epoch 0."
    return [s for s in (dataset.sample(0, i % len(dataset)) for i in range(samples)) if s.synthesis is not None]


def test_patches_come_from_the_sources_not_the_shots(tmp_path):
    black = [np.zeros((224, 224), np.uint8)] * 4
    white_file = tmp_path / "white.png"
    from PIL import Image
    Image.fromarray(np.full((300, 300), 255, np.uint8)).save(white_file)
    for sources in ([np.full((224, 224), 255, np.uint8)], [white_file]):
        anomalies = pasted(TrainingSet(black, seed=0, synthesis="patch", sources=sources))
        assert anomalies and all(s.image[s.synthesis.mask].min() >= 127 for s in anomalies)  # opacity >= 0.5 of white
        assert all(s.image[~s.synthesis.mask].max() == 0 for s in anomalies)
    assert all(s.image.max() == 0 for s in pasted(TrainingSet(black, seed=0, synthesis="patch")))  # default: the shots


def test_train_records_patch_sources_and_uses_all_normals_by_default(tiny, tmp_path):
    runs, options = {}, dict(clip=tiny, seed=0, progress=False, epochs=1, shots=8, batch_size=8, synthesis="patch")
    for sources in ("all", "shots"):
        runs[sources] = train("demo", out=tmp_path / sources, patch_sources=sources, **options)
        state = json.loads((tmp_path / sources / "run.json").read_text())
        assert state["preset"]["patch_sources"] == sources and state["preset"]["synthesis"] == "patch"
    assert runs["all"].history[0]["loss"] != runs["shots"].history[0]["loss"]
    again = train("demo", patch_sources="all", **options)
    assert again.history[0]["loss"] == runs["all"].history[0]["loss"]
    assert len(read_dataset(bundled_sample("train").root, "kermany", "train").normals()) > 8  # "all" is more than the shots


def test_bad_patch_sources_refused_before_anything_is_written(tiny, tmp_path):
    with pytest.raises(PPADError, match="patch_sources .* must be all or shots, not 'everything'"):
        train("demo", clip=tiny, out=tmp_path / "run", progress=False, epochs=1, patch_sources="everything")
    assert not (tmp_path / "run").exists()


def vindr_release(root):
    "A tiny VinDr-CXR folder (Med-AD layout) made of the bundled sample."
    train, test = bundled_sample("train"), bundled_sample("test")
    names = [f.name for f in copy_images(train.files[:2] + test.files[:2] + test.files[-2:], root / "VinCXR" / "images")]
    (root / "VinCXR" / "data.json").write_text(json.dumps({"train": {"0": names[:2]}, "test": {"0": names[2:4], "1": names[4:6]}}))
    return root


def test_vindr_zero_shot_prompts_have_no_period(tiny, tmp_path):
    root = vindr_release(tmp_path / "data")
    reproduce("vindr", data=root, clip=tiny, methods=("chexzero",), out=tmp_path / "out", device="cpu", quiet=True)
    scores = (tmp_path / "out" / "chexzero" / "report" / "scores.csv").read_text().splitlines()
    header, rows = scores[0].split(","), [r.split(",") for r in scores[1:]]
    files = read_dataset(root, "vindr", "test").files
    images = torch.stack([to_tensor(load_image(f, 256)) for f in files])  # VinDr-CXR's two-step resize, as ppad-evaluate reads it
    assert len(rows) == len(files)
    model = build_model("chexzero", tiny, layout="vindr")
    assert torch.equal(model.tokens[0], tokenize(["normal", "pneumonia"], context_length=model.tokens.shape[-1]))
    assert torch.equal(build_model("chexzero", tiny, layout="zhanglab").tokens[0], tokenize(["normal.", "pneumonia."], context_length=model.tokens.shape[-1]))
    with torch.no_grad():
        image_features = tiny.encode_image(images, normalize=True)
        direct = {}
        for words in (["normal", "pneumonia"], ["normal.", "pneumonia."]):
            text = tiny.encode_text(tokenize(words), normalize=True)
            direct[words[0]] = (tiny.logit_scale.exp() * image_features @ text.T).softmax(-1)[:, 1].numpy()
    column = header.index("score")
    recorded = np.array([float(r[column]) for r in rows])
    assert np.abs(direct["normal"] - direct["normal."]).max() > 1e-4  # the period changes the scores
    np.testing.assert_allclose(recorded, direct["normal"], atol=1e-5)


CLI_SMALL = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 8, "--batch-size", 8, "--device", "cpu"]


def test_patch_sources_from_the_command_line(tmp_path):
    "--patch-sources reaches the preset of ppad-train and ppad-reproduce (recorded in run.json); a bad value is refused by argparse."
    from conftest import run
    trained = run("ppad-train", *CLI_SMALL, "--patch-sources", "shots", "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["preset"]["patch_sources"] == "shots"
    reproduced = run("ppad-reproduce", *CLI_SMALL, "--seeds", 0, "--methods", "patch", "--patch-sources", "shots", "--out", tmp_path / "table")
    assert reproduced.returncode == 0, reproduced.stderr
    state = json.loads((tmp_path / "table" / "patch" / "seed0" / "run.json").read_text())
    assert (state["preset"]["synthesis"], state["preset"]["patch_sources"]) == ("patch", "shots")
    refused = run("ppad-train", *CLI_SMALL, "--patch-sources", "everything", "--out", tmp_path / "other")
    assert refused.returncode == 2 and "invalid choice: 'everything'" in refused.stderr
    assert not (tmp_path / "other").exists()
