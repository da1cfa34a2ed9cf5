"""SAS equals the released routine pixel for pixel, given the released draws.

tests/fixtures/release/sas_exact.npz (see its README.md) holds 40 calls of the official
`generate_anomaly_mask(image, weight, region_mask)` made right after `np.random.seed(seed)`: the image read, the seed,
region and strength, and channel 0 of the result. A legacy `np.random.RandomState(seed)` handed to the kit must give the
same image, through the fast path and through the direct transcription.
"""
import numpy as np
import pytest
import torch

from conftest import FIXTURES
from ppad_nb.data import REGION_BOXES
from ppad_nb.synthesis import paste_patch, reference_synthesize_anomaly, synthesize_anomaly

RELEASE = np.load(FIXTURES / "release" / "sas_exact.npz")
CASES = range(len(RELEASE["seeds"]))


def test_fixture_covers_every_region_and_strength():
    assert len(CASES) == 40
    assert set(RELEASE["regions"].tolist()) == set(range(5))
    assert set(RELEASE["weights"].tolist()) == {-0.999, -0.99, 2.0, 3.0}
    assert RELEASE["inputs"].shape == RELEASE["outputs"].shape == (40, 224, 224)


@pytest.mark.parametrize("synthesize", [synthesize_anomaly, reference_synthesize_anomaly], ids=["fast", "reference"])
@pytest.mark.parametrize("case", CASES)
def test_released_output_reproduced_pixel_for_pixel(synthesize, case):
    image, expected = RELEASE["inputs"][case], RELEASE["outputs"][case]
    result = synthesize(image, int(RELEASE["regions"][case]), rng=np.random.RandomState(int(RELEASE["seeds"][case])),
                        strength=float(RELEASE["weights"][case]))
    assert (result.image != image).any()  # the case did synthesize something
    assert np.array_equal(result.image, expected), f"{int((result.image != expected).sum())} pixels differ"


def test_three_channel_input_reads_channel_zero():
    image = np.repeat(RELEASE["inputs"][0][..., None], 3, axis=2)
    result = synthesize_anomaly(image, int(RELEASE["regions"][0]), rng=np.random.RandomState(int(RELEASE["seeds"][0])),
                                strength=float(RELEASE["weights"][0]))
    assert np.array_equal(result.image, RELEASE["outputs"][0])


def test_paste_patch_makes_the_released_draws():
    "The released ablation, by hand: numpy's global generator for the square, torch's for the opacity, a float32 blend."
    image, source = RELEASE["inputs"][0], RELEASE["inputs"][1]
    for seed, region in [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 0)]:
        state = np.random.RandomState(seed)
        (top, bottom), (left, right) = REGION_BOXES[region]
        row, col = state.randint(top, bottom), state.randint(left, right)
        half = state.randint(11, 45)
        opacity = torch.rand(1, generator=torch.Generator().manual_seed(seed + 100)) * 0.5 + 0.5
        rows, cols = slice(max(row - half, 0), min(row + half, 224)), slice(max(col - half, 0), min(col + half, 224))
        expected = image.copy()
        expected[rows, cols] = ((1 - opacity) * torch.tensor(image[rows, cols]) + opacity * torch.tensor(source[rows, cols])).numpy().astype(np.uint8)
        result = paste_patch(image, source, region, rng=np.random.RandomState(seed), opacity_rng=torch.Generator().manual_seed(seed + 100))
        assert result.centre == (row, col) and result.strength == pytest.approx(float(opacity), abs=0)
        assert np.array_equal(result.image, expected)
        assert np.array_equal(result.mask[rows, cols], np.ones((rows.stop - rows.start, cols.stop - cols.start), bool))


def test_paste_patch_seed_alone_fixes_the_opacity():
    image, source = RELEASE["inputs"][0], RELEASE["inputs"][1]
    first, again, other = (paste_patch(image, source, 4, rng=seed) for seed in (7, 7, 8))
    assert np.array_equal(first.image, again.image) and first.strength == again.strength
    assert first.strength != other.strength and 0.5 <= first.strength < 1
