"""The kit's own hostile corpus for what it reads (issue 17, principle 3): every value read from a file is validated where
it is read, with one line naming the file and the field.

Each case builds its hostile file here (pydicom, Pillow, torch/safetensors, zip archives, CSV and JSON) and asserts the
outcome: a `PPADError` whose one line names the file (library calls), or `assert_user_error` (console scripts). Controls
next to each class check that what the standard allows still reads. Kept fast: library calls and in-process console
scripts; one tiny run shared by the `--run` cases; two subprocesses where a separate process is the point.
"""
import contextlib
import functools
import io
import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FIXTURES, assert_user_error, call, copy_images, run
from ppad_nb import cli
from ppad_nb.safety import PPADError
from ppad_nb.data import load_image, read_shot_manifest, write_shot_manifest
from ppad_nb.reports import read_operating_point
from ppad_nb.model import PPAD, RandomWeightsWarning, load_clip

PARITY = FIXTURES / "parity-tiny"
call_all = functools.partial(call, ignore=Warning)  # every warning unshown: the one-line outcome is what these tests read
pytestmark = pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning", "ignore::FutureWarning", "ignore::UserWarning")




def refused(action, path, *fragments) -> str:
    "Assert `action()` raises a one-line PPADError that starts with `path` and holds `fragments`; return the message."
    with pytest.raises(PPADError) as error: action()
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert " at 0x" not in message and "Traceback" not in message, message
    for fragment in fragments: assert fragment in message, (fragment, message)
    return message



# ---------------------------------------------------------------------------------------------------------------
# 1. DICOM: tags against PS3.3, LUT descriptors, bits, damaged compression, other formats named .dcm, size

PLACEHOLDER = "12345.67{}"  # a DS value of even length that a test then overwrites in the bytes with a hostile string


def dicom_file(path, rows=40, columns=40, allocated=16, stored=12, pixels=None, raw=None, syntax=None, payload=None, **tags) -> Path:
    """A single-frame MONOCHROME2 DICOM written with pydicom; `raw` puts strings pydicom refuses to write into DS tags, byte for byte;
    with a compressed `syntax`, `payload` is its one encapsulated frame."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.file_meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SecondaryCaptureImageStorage, ds.file_meta.MediaStorageSOPInstanceUID, "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = rows, columns, 1, "MONOCHROME2", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, max(stored - 1, 0)
    if pixels is None: pixels = np.arange(rows * columns).reshape(rows, columns) % (2 ** min(stored, allocated))
    ds.PixelData = np.asarray(pixels).astype(np.uint8 if allocated == 8 else "<u2").tobytes()
    if payload is not None:
        from pydicom.encaps import encapsulate
        ds.PixelData = encapsulate([payload]); ds["PixelData"].VR = "OB"
    for i, keyword in enumerate(raw or {}): setattr(ds, keyword, PLACEHOLDER.format(i))
    for keyword, value in tags.items(): setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    for i, value in enumerate((raw or {}).values()):
        hostile = value.encode() + b" " * (len(value) % 2)
        data = data.replace(b"DS\x0a\x00" + PLACEHOLDER.format(i).encode() + b" ", b"DS" + len(hostile).to_bytes(2, "little") + hostile)
    Path(path).write_bytes(data)
    return Path(path)


def lut(descriptor, data=None, vr="US", modality=False):
    "A LUT sequence item: `descriptor` (or none) and LUT Data `data` (or none)."
    from pydicom.dataset import Dataset
    item = Dataset()
    if descriptor is not None: item.LUTDescriptor = descriptor
    if data is not None: item.add_new(0x00283006, vr, data)
    if modality: item.ModalityLUTType = "US"
    return [item]


DICOM_TAG_CASES = {  # name: (dicom_file arguments, fragments of the one-line error)
    "slope-nan": (dict(RescaleSlope="NaN", RescaleIntercept="0"), ["RescaleSlope is nan"]),
    "slope-inf": (dict(RescaleSlope="inf", RescaleIntercept="0"), ["RescaleSlope is inf"]),
    "slope-minus-inf": (dict(RescaleSlope="-inf", RescaleIntercept="0"), ["RescaleSlope is -inf"]),
    "slope-1e308": (dict(RescaleSlope="1e308", RescaleIntercept="0"), ["RescaleSlope 1e+308", "overflow"]),
    "slope-zero": (dict(RescaleSlope="0", RescaleIntercept="0"), ["RescaleSlope is 0"]),
    "slope-text": (dict(raw={"RescaleSlope": "abc"}, RescaleIntercept="0"), ["RescaleSlope 'abc' is not a number"]),
    "slope-two-values": (dict(raw={"RescaleSlope": "x\\2"}, RescaleIntercept="0"), ["RescaleSlope", "is not a number"]),
    "intercept-nan": (dict(RescaleSlope="1", RescaleIntercept="NaN"), ["RescaleIntercept is nan"]),
    "intercept-text": (dict(RescaleSlope="1", raw={"RescaleIntercept": "-1024HU"}), ["RescaleIntercept '-1024HU' is not a number"]),
    "intercept-overflows": (dict(RescaleSlope="1", RescaleIntercept="1e309"), ["RescaleIntercept is inf"]),
    "width-zero": (dict(WindowCenter="2048", WindowWidth="0"), ["WindowWidth 0 is below 1"]),
    "width-negative": (dict(WindowCenter="2048", WindowWidth="-4000"), ["WindowWidth -4000 is below 1"]),
    "width-half": (dict(WindowCenter="2048", WindowWidth="0.5"), ["WindowWidth 0.5 is below 1"]),
    "width-nan": (dict(WindowCenter="2048", WindowWidth="NaN"), ["WindowWidth is nan"]),
    "width-text": (dict(WindowCenter="2048", raw={"WindowWidth": "wide"}), ["WindowWidth 'wide' is not a number"]),
    "width-zero-linear-exact": (dict(WindowCenter="2048", WindowWidth="0", VOILUTFunction="LINEAR_EXACT"), ["WindowWidth 0 is not above 0"]),
    "width-negative-sigmoid": (dict(WindowCenter="2048", WindowWidth="-1", VOILUTFunction="SIGMOID"), ["WindowWidth -1 is not above 0"]),
    "centre-text": (dict(raw={"WindowCenter": "abc"}, WindowWidth="400"), ["WindowCenter 'abc' is not a number"]),
    "centre-nan": (dict(WindowCenter="NaN", WindowWidth="400"), ["WindowCenter is nan"]),
    "centre-inf": (dict(WindowCenter="inf", WindowWidth="400"), ["WindowCenter is inf"]),
    "bits-stored-over-allocated": (dict(stored=20, pixels=np.zeros((40, 40))), ["BitsStored 20 is not from 1 to BitsAllocated 16"]),
    "bits-stored-zero": (dict(stored=0, pixels=np.zeros((40, 40))), ["BitsStored 0 is not from 1"]),
    "bits-stored-9-of-8": (dict(allocated=8, stored=9, pixels=np.zeros((40, 40))), ["BitsStored 9 is not from 1 to BitsAllocated 8"]),
    "pixels-above-12-bits": (dict(pixels=np.full((40, 40), 60000)), ["stored values above its BitsStored (12 bits, at most 4095)"]),
    "pixels-above-6-bits": (dict(allocated=8, stored=6, pixels=np.full((40, 40), 200)), ["above its BitsStored (6 bits, at most 63)"]),
    "voi-lut-short-data": (dict(VOILUTSequence=lut([4096, 0, 8], list(range(256)))), ["VOILUTSequence LUT Descriptor says 4096 entries but its LUT Data holds 256"]),
    "voi-lut-long-data": (dict(VOILUTSequence=lut([16, 0, 8], list(range(256)))), ["says 16 entries but its LUT Data holds 256"]),
    "voi-lut-20-bits": (dict(VOILUTSequence=lut([256, 0, 20], list(range(256)))), ["says 20 bits per entry"]),
    "voi-lut-two-numbers": (dict(VOILUTSequence=lut([256, 0], list(range(256)))), ["LUT Descriptor", "is not 3 numbers"]),
    "voi-lut-no-data": (dict(VOILUTSequence=lut([256, 0, 8])), ["VOILUTSequence has no LUT Descriptor or LUT Data"]),
    "voi-lut-no-descriptor": (dict(VOILUTSequence=lut(None, list(range(256)))), ["has no LUT Descriptor or LUT Data"]),
    "voi-lut-empty-sequence": (dict(VOILUTSequence=[]), ["VOILUTSequence has no LUT Descriptor or LUT Data"]),
    "modality-lut-short-data": (dict(ModalityLUTSequence=lut([4096, 0, 12], list(range(100)), modality=True)), ["ModalityLUTSequence LUT Descriptor says 4096 entries"]),
    "modality-lut-4-bits": (dict(ModalityLUTSequence=lut([4096, 0, 4], list(range(4096)), modality=True)), ["says 4 bits per entry"]),
    "modality-lut-no-data": (dict(ModalityLUTSequence=lut([4096, 0, 12], modality=True)), ["ModalityLUTSequence has no LUT Descriptor or LUT Data"]),
    "one-pixel": (dict(rows=1, columns=1), ["is 1 x 1 pixels; an X-ray needs at least 32 a side"]),
    "31-columns": (dict(rows=40, columns=31), ["is 31 x 40 pixels"]),
    "3-rows": (dict(rows=3, columns=400), ["is 400 x 3 pixels"]),
}


@pytest.mark.parametrize("name", list(DICOM_TAG_CASES))
def test_dicom_tags_are_checked_where_read(tmp_path, name):
    arguments, fragments = DICOM_TAG_CASES[name]
    path = dicom_file(tmp_path / f"{name}.dcm", **arguments)
    refused(lambda: load_image(path), path, *fragments)


DICOM_ACCEPTED = {  # what PS3.3 allows still reads: name -> (dicom_file arguments, expected grey levels of the first row's ends)
    "width-one": (dict(WindowCenter="2048", WindowWidth="1"), (0, 255)),
    "negative-slope": (dict(RescaleSlope="-1", RescaleIntercept="4095"), (255, 0)),  # inverted by the modality LUT
    "blank-slope-is-absent": (dict(raw={"RescaleSlope": ""}, RescaleIntercept="0"), (0, 255)),
    "matching-voi-lut": (dict(VOILUTSequence=lut([256, 0, 8], list(range(255, -1, -1)))), (255, 0)),  # 4095 is past its end: its last entry
    "32-pixels-a-side": (dict(rows=32, columns=32), (0, 255)),
}


@pytest.mark.parametrize("name", list(DICOM_ACCEPTED))
def test_dicom_the_standard_allows_still_reads(tmp_path, name):
    arguments, (first, last) = DICOM_ACCEPTED[name]
    pixels = np.zeros((40, 40), np.uint16); pixels[0, -1] = 4095  # black, and one white pixel at the end of the first row
    if "rows" in arguments: pixels = pixels[:arguments["rows"], -arguments["columns"]:]
    arguments = {**arguments, "pixels": pixels}
    from ppad_nb.data import read_dicom
    gray = read_dicom(dicom_file(tmp_path / f"{name}.dcm", **arguments))
    assert (int(gray[0, 0]), int(gray[0, -1])) == (first, last)


@pytest.mark.parametrize("syntax_name", ["RLELossless", "JPEGBaseline8Bit", "JPEG2000Lossless", "JPEGLSLossless"])
def test_damaged_compressed_dicom_is_one_line_without_object_addresses(tmp_path, syntax_name):
    import pydicom.uid
    syntax = getattr(pydicom.uid, syntax_name)
    path = dicom_file(tmp_path / "damaged.dcm", allocated=8, stored=8, syntax=syntax, payload=b"\xff\xd8 not the image this claims to be \xff\xd9")
    # a decoder that is installed says the data are damaged; one that is not says what to install: both name the compression
    refused(lambda: load_image(path), path, "compressed", syntax.name)


OTHER_FORMATS = {  # name: (how to write it, what the error calls it)
    "png.dcm": (lambda p: Image.fromarray(np.zeros((40, 40), np.uint8)).save(p, format="PNG"), "it is a PNG image named .dcm"),
    "jpeg.dcm": (lambda p: Image.fromarray(np.zeros((40, 40), np.uint8)).save(p, format="JPEG"), "it is a JPEG image named .dcm"),
    "tiff.dcm": (lambda p: Image.fromarray(np.zeros((40, 40), np.uint8)).save(p, format="TIFF"), "it is a TIFF image named .dcm"),
    "bmp.dicom": (lambda p: Image.fromarray(np.zeros((40, 40), np.uint8)).save(p, format="BMP"), "it is a BMP image named .dicom"),
    "zip.dcm": (lambda p: zipfile.ZipFile(p, "w").writestr("x.dcm", b"DICM"), "it is a zip archive named .dcm"),
    "pdf.dcm": (lambda p: Path(p).write_bytes(b"%PDF-1.4\n%report\n"), "it is a PDF document named .dcm"),
}


@pytest.mark.parametrize("name", list(OTHER_FORMATS))
def test_a_file_named_dcm_is_named_for_what_it_is(tmp_path, name):
    write, called = OTHER_FORMATS[name]
    write(tmp_path / name)
    refused(lambda: load_image(tmp_path / name), tmp_path / name, "not a readable DICOM file", called)


# ---------------------------------------------------------------------------------------------------------------
# 2. Images: a minimum size; the range of integer TIFFs

SMALL_IMAGES = {"1x1.png": (1, 1), "1x1.jpg": (1, 1), "1x1.tif": (1, 1), "31x64.png": (31, 64), "64x31.bmp": (64, 31), "10x10.gif": (10, 10)}


@pytest.mark.parametrize("name", list(SMALL_IMAGES))
def test_tiny_images_are_refused(tmp_path, name):
    width, height = SMALL_IMAGES[name]
    Image.fromarray(np.full((height, width), 128, np.uint8)).save(tmp_path / name)
    refused(lambda: load_image(tmp_path / name), tmp_path / name, f"is {width} x {height} pixels; an X-ray needs at least 32 a side")


def test_a_sixteen_bit_one_pixel_png_is_refused_too(tmp_path):
    Image.fromarray(np.array([[40000]], np.uint16)).save(tmp_path / "dot16.png")
    refused(lambda: load_image(tmp_path / "dot16.png"), tmp_path / "dot16.png", "is 1 x 1 pixels")


def int32_tiff(path, values) -> Path:
    Image.fromarray(np.asarray(values, np.int32)).save(path)
    assert Image.open(path).mode == "I"
    return Path(path)


def test_signed_32_bit_tiff_is_mapped_by_its_own_range(tmp_path):
    values = np.linspace(-5000, -1000, 64 * 64).reshape(64, 64)  # all negative: clipped to 0..65535 it was black
    from ppad_nb.data import read_grayscale
    gray = np.asarray(read_grayscale(int32_tiff(tmp_path / "signed.tif", values)))
    expected = np.rint((values.astype(np.int32) - (-5000)) * 255.0 / 4000).astype(np.uint8)
    np.testing.assert_array_equal(gray, expected)
    assert (gray.min(), gray.max()) == (0, 255)


def test_32_bit_tiff_beyond_16_bits_is_mapped_by_its_range_and_16_bit_data_by_65535(tmp_path):
    from ppad_nb.data import read_grayscale
    wide = np.tile(np.array([100000, 300000, 500000], np.int32), (40, 14))[:, :40]
    gray = np.asarray(read_grayscale(int32_tiff(tmp_path / "wide.tif", wide)))
    assert sorted(np.unique(gray).tolist()) == [0, round(200000 * 255 / 400000), 255]
    narrow = np.tile(np.array([0, 257, 65535], np.int32), (40, 14))[:, :40]  # 16-bit data in a 32-bit container: over 0..65535
    assert sorted(np.unique(np.asarray(read_grayscale(int32_tiff(tmp_path / "narrow.tif", narrow)))).tolist()) == [0, 1, 255]


def test_a_32_bit_tiff_of_one_value_is_refused(tmp_path):
    path = int32_tiff(tmp_path / "flat.tif", np.full((40, 40), -12))
    refused(lambda: load_image(path), path, "holds the one value -12 in every pixel")


# ---------------------------------------------------------------------------------------------------------------
# 3. Learner files: tensors floating, shaped and finite; recorded settings of the right types

def kit_learner(model, path, **changes) -> Path:
    "The kit's learner checkpoint of `model` with `changes` (None removes an entry), saved with torch.save."
    checkpoint = {**model.learner_checkpoint(), **changes}
    torch.save({k: v for k, v in checkpoint.items() if v is not None}, path)
    return path


LEARNER_CASES = {  # name: (changes, fragments)
    "ctx-int64": (dict(ctx=torch.zeros(16, 64, dtype=torch.int64)), ["its ctx holds int64 values, not floating-point numbers"]),
    "ctx-uint8": (dict(ctx=torch.zeros(16, 64, dtype=torch.uint8)), ["its ctx holds uint8 values"]),
    "ctx-bool": (dict(ctx=torch.zeros(16, 64, dtype=torch.bool)), ["its ctx holds bool values"]),
    "ctx-complex": (dict(ctx=torch.zeros(16, 64, dtype=torch.complex64)), ["its ctx holds complex64 values"]),
    "mask-bool": (dict(mask_embedding=torch.zeros(1, 49, 64, dtype=torch.bool)), ["its mask_embedding holds bool values"]),
    "mask-int32": (dict(mask_embedding=torch.zeros(1, 49, 64, dtype=torch.int32)), ["its mask_embedding holds int32 values"]),
    "ctx-list": (dict(ctx=[[0.0] * 64] * 16), ["its ctx is a list, not a tensor"]),
    "ctx-string": (dict(ctx="zeros"), ["its ctx is a str, not a tensor"]),
    "ctx-nan": (dict(ctx=torch.full((16, 64), float("nan"))), ["ctx: 1024 of 1024 values are NaN or infinite"]),
    "mask-inf": (dict(mask_embedding=torch.full((1, 49, 64), float("inf"))), ["mask_embedding", "NaN or infinite"]),
    "no-ctx": (dict(ctx=None), ["has no ctx: not a complete learner"]),
    "no-mask": (dict(mask_embedding=None), ["has no mask_embedding"]),
    "ctx-wrong-length": (dict(ctx=torch.zeros(15, 64)), ["ctx is (15, 64), but this model expects (16, 64)"]),
    "ctx-wrong-width": (dict(ctx=torch.zeros(16, 63)), ["ctx is (16, 63), but this CLIP needs (16, 64)"]),
    "clip-a-string": (dict(clip="chexzero.pt"), ["its clip is a str, not a dictionary"]),
    "clip-a-list": (dict(clip=["chexzero.pt"]), ["its clip is a list, not a dictionary"]),
    "config-a-string": (dict(config="paper"), ["records prompt settings the kit does not know: 'paper'"]),
    "config-unknown-key": (dict(config={"n_ctx": 16, "temperature": 2}), ["records prompt settings the kit does not know"]),
}
CONFIG_CASES = {  # name: (config changes, fragments)
    "n-ctx-minus-one": (dict(n_ctx=-1), ["its n_ctx -1 is not a whole number from 1 to 76"]),
    "n-ctx-zero": (dict(n_ctx=0), ["its n_ctx 0 is not a whole number"]),
    "n-ctx-four": (dict(n_ctx="four"), ["its n_ctx 'four' is not a whole number"]),
    "n-ctx-200": (dict(n_ctx=200), ["its n_ctx 200 is not a whole number from 1 to 76"]),
    "n-ctx-true": (dict(n_ctx=True), ["its n_ctx True is not a whole number"]),
    "n-ctx-fraction": (dict(n_ctx=16.5), ["its n_ctx 16.5 is not a whole number"]),
    "n-ctx-75": (dict(n_ctx=75), ["its prompts need 81 tokens", "more than CLIP's 77"]),  # 75 + left lung + pneumonia + . + start and end
    "one-class-name": (dict(class_names=["normal"]), ["its class_names ['normal'] are not 2 names"]),
    "three-class-names": (dict(class_names=["normal", "pneumonia", "other"]), ["are not 2 names"]),
    "integer-class-names": (dict(class_names=[0, 1]), ["its class_names [0, 1] are not 2 names"]),
    "class-names-a-string": (dict(class_names="normal"), ["its class_names 'normal' are not 2 names"]),
    "four-position-names": (dict(position_names=["a", "b", "c", "d"]), ["its position_names", "are not 5 names"]),
    "position-names-400-characters": (dict(position_names=["lung" * 100] * 5), ["are not 5 names of at most 200 characters"]),
    "integer-position-names": (dict(position_names=[1, 2, 3, 4, 5]), ["are not 5 names"]),
    "position-names-too-many-tokens": (dict(position_names=["x." * 30] * 5), ["its prompts need 80 tokens"]),  # 60 + 16 + 2 + 2
    "image-prompt-yes": (dict(image_prompt="yes"), ["its image_prompt 'yes' is not true or false"]),
}


@pytest.fixture(scope="module")
def model(tiny): return PPAD(tiny)


@pytest.mark.parametrize("name", list(LEARNER_CASES))
def test_learner_tensors_and_records_are_checked(tmp_path, tiny, model, name):
    changes, fragments = LEARNER_CASES[name]
    path = kit_learner(model, tmp_path / f"{name}.pt", **changes)
    refused(lambda: PPAD.from_learner(tiny, path), path, *fragments)


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_learner_prompt_settings_are_checked_naming_the_file(tmp_path, tiny, model, name):
    changes, fragments = CONFIG_CASES[name]
    path = kit_learner(model, tmp_path / f"{name}.pt", config={**model.model_config(), **changes})
    refused(lambda: PPAD.from_learner(tiny, path), path, *fragments)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_official_learner_of_integers_is_refused_by_load_learner(tmp_path, model, dtype):
    path = tmp_path / "official.pt"
    torch.save({"prompt_learner_ctx": {"ctx": torch.zeros(16, 64, dtype=dtype)}, "image_mask_learner": {"mask_embedding": model.mask_embedding.detach()}}, path)
    refused(lambda: PPAD(model.clip).load_learner(path), path, f"its ctx holds {str(dtype).replace('torch.', '')} values")


def test_safetensors_learners_are_checked_as_well(tmp_path, tiny, model):
    from safetensors.torch import save_file
    metadata = {k: json.dumps(v) for k, v in model.learner_checkpoint().items() if k not in ("ctx", "mask_embedding")}
    save_file({"ctx": torch.zeros(16, 64, dtype=torch.int32), "mask_embedding": model.mask_embedding.detach().contiguous()}, tmp_path / "int.safetensors", metadata)
    refused(lambda: PPAD.from_learner(tiny, tmp_path / "int.safetensors"), tmp_path / "int.safetensors", "its ctx holds int32 values")
    tensors = {"ctx": model.ctx.detach().contiguous(), "mask_embedding": model.mask_embedding.detach().contiguous()}
    save_file(tensors, tmp_path / "n.safetensors", {**metadata, "config": json.dumps({**model.model_config(), "n_ctx": "four"})})
    refused(lambda: PPAD.from_learner(tiny, tmp_path / "n.safetensors"), tmp_path / "n.safetensors", "its n_ctx 'four'")
    save_file(tensors, tmp_path / "clip.safetensors", {**metadata, "clip": json.dumps("chexzero")})
    refused(lambda: PPAD.from_learner(tiny, tmp_path / "clip.safetensors"), tmp_path / "clip.safetensors", "its clip is a str")


def test_a_hand_made_learner_that_is_valid_still_loads(tmp_path, tiny, model):
    "Control: 40-word position names and 8 context words fit CLIP's 77 tokens and load."
    config = {**model.model_config(), "position_names": ["the lower left lung field " * 5] * 5, "n_ctx": 8}
    path = kit_learner(model, tmp_path / "valid.pt", config=config, ctx=torch.zeros(8, 64))
    assert PPAD.from_learner(tiny, path).position_names == tuple(config["position_names"])


def test_learner_errors_reach_the_console_in_one_line(tmp_path, model):
    path = kit_learner(model, tmp_path / "n200.pt", config={**model.model_config(), "n_ctx": 200})
    image = copy_images([sorted((PARITY / "images").iterdir())[0]], tmp_path / "images")[0]
    assert_user_error(call_all(cli.predict, image, "--clip-weights", "random:tiny", "--learner", path, "--device", "cpu", prog="ppad-predict"),
                      path, "n_ctx 200")


# ---------------------------------------------------------------------------------------------------------------
# 4. TorchScript archives: declared sizes checked against the data before anything is allocated

class _Storage:
    "Pickled as a reference to storage `key` of `count` float32 values."
    def __init__(self, key="0", count=4): self.key, self.count = key, count


class _Forger(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, obj.key, "cpu", obj.count) if isinstance(obj, _Storage) else None


class _Declared:
    "A tensor as a pickle declares it: storage, offset, size, stride."
    def __init__(self, storage, offset, size, stride): self.args = (storage, offset, size, stride)
    def __reduce__(self): return (torch._utils._rebuild_tensor_v2, (*self.args, False, OrderedDict()))


def forged_archive(path, offset=0, size=(2, 2), stride=(2, 1), declared_count=4, stored_bytes=16) -> Path:
    "A TorchScript-like archive (data.pkl, data/0, constants.pkl) with one tensor as declared, over `stored_bytes` of storage."
    buffer = io.BytesIO()
    _Forger(buffer, protocol=2).dump({"w": _Declared(_Storage("0", declared_count), offset, size, stride)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("forged/data.pkl", buffer.getvalue())
        archive.writestr("forged/data/0", bytes(stored_bytes))
        archive.writestr("forged/constants.pkl", pickle.dumps(()))
    return Path(path)


ARCHIVE_CASES = {  # name: (forged_archive arguments, fragments)
    "25000-squared-over-nothing": (dict(size=(25000, 25000), stride=(25000, 1), declared_count=0, stored_bytes=0), ["a tensor declares 25000 x 25000 values but its storage holds 0"]),
    "25000-squared-over-four": (dict(size=(25000, 25000), stride=(25000, 1)), ["a tensor declares 25000 x 25000 values but its storage holds 4"]),
    "stride-past-the-end": (dict(size=(2, 2), stride=(4, 1)), ["declares 2 x 2 values but its storage holds 4"]),
    "offset-past-the-end": (dict(offset=3, size=(2, 2), stride=(2, 1)), ["but its storage holds 4"]),
    "negative-size": (dict(size=(-1, 4), stride=(4, 1)), ["declares the shape (-1, 4)"]),
    "negative-stride": (dict(size=(2, 2), stride=(-2, 1)), ["with strides (-2, 1)"]),
    "size-and-stride-lengths-differ": (dict(size=(2, 2), stride=(1,)), ["declares the shape (2, 2) with strides (1,)"]),
    "storage-declares-a-billion": (dict(declared_count=10 ** 9), ["its storage 0 declares 1000000000 values of torch.float32 but holds 16 bytes"]),
    "storage-shorter-than-declared": (dict(stored_bytes=8), ["its storage 0 declares 4 values", "holds 8 bytes"]),
}


@pytest.mark.parametrize("name", list(ARCHIVE_CASES))
def test_forged_archives_are_refused_before_allocating(tmp_path, name):
    from ppad_nb.safety import read_torchscript_tensors
    arguments, fragments = ARCHIVE_CASES[name]
    path = forged_archive(tmp_path / f"{name}.pt", **arguments)
    refused(lambda: read_torchscript_tensors(path), path, "the TorchScript archive is damaged or forged", *fragments)


def test_an_honest_forged_layout_reads(tmp_path):
    "Control: the same hand-made layout with sizes that fit its storage reads back."
    from ppad_nb.safety import _unpickle_archive
    tree = _unpickle_archive(forged_archive(tmp_path / "honest.pt", size=(2, 2), stride=(1, 2)))
    assert tree["w"].shape == (2, 2) and tree["w"].dtype == torch.float32


def test_the_542_byte_archive_is_refused_without_allocating_gigabytes(tmp_path):
    "In a fresh process, so that its peak memory is this read's: 25000 x 25000 float32 zeros over an empty storage would be 2.5 GB."
    path = forged_archive(tmp_path / "forged.pt", size=(25000, 25000), stride=(25000, 1), declared_count=0, stored_bytes=0)
    assert path.stat().st_size < 1000
    script = ("import resource, sys\nfrom ppad_nb.safety import PPADError, read_torchscript_tensors\nimport torch\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "try: read_torchscript_tensors(sys.argv[1])\nexcept PPADError as e: print(e)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    message, grown_kb = result.stdout.strip().splitlines()
    assert "declares 25000 x 25000 values" in message, result.stdout + result.stderr
    assert int(grown_kb) < 100 * 1024, grown_kb  # under 100 MB more than torch's import took


def test_a_forged_clip_archive_is_one_line_from_the_console(tmp_path):
    path = forged_archive(tmp_path / "clip.pt", size=(25000, 25000), stride=(25000, 1), declared_count=0, stored_bytes=0)
    image = copy_images([sorted((PARITY / "images").iterdir())[0]], tmp_path / "images")[0]
    assert_user_error(call_all(cli.predict, image, "--clip-weights", path, "--learner", PARITY / "learner_tiny.pt", "--device", "cpu", prog="ppad-predict"),
                      path, "damaged or forged")


# ---------------------------------------------------------------------------------------------------------------
# 5. Shot manifests and --shots-file

@pytest.fixture(scope="module")
def shots(sample):
    "Three bundled training normals and their manifest's lines."
    return sample[0].root, sample[0].normals()[:3]


def manifest_lines(root, files) -> list:
    "The lines of a shot manifest of `files` (relative to `root`) with their SHA-256, as the kit writes it."
    import hashlib
    lines = ["file,seed,sha256"]
    for f in files: lines.append(f"{Path(f).relative_to(root).as_posix()},0,{hashlib.sha256(Path(f).read_bytes()).hexdigest()}")
    return lines


MANIFEST_CASES = {  # name: (text from the good lines, fragments)
    "row-repeated": (lambda lines: lines + [lines[1]], ["twice (rows 1 and 4)"]),
    "row-repeated-8-times": (lambda lines: [lines[0]] + [lines[1]] * 8, ["twice (rows 1 and 2)"]),
    "row-repeated-as-dot-slash": (lambda lines: lines + ["./" + lines[2]], ["twice (rows 2 and 4)"]),
    "blank-sha256": (lambda lines: lines[:2] + [lines[2].rsplit(",", 1)[0] + ","], ["row 2 (", "sha256 '' is not a SHA-256"]),
    "short-sha256": (lambda lines: lines[:2] + [lines[2].rsplit(",", 1)[0] + ",abc123"], ["sha256 'abc123' is not a SHA-256"]),
    "blank-file-name": (lambda lines: lines + [",0," + "0" * 64], ["row 4 has no file name"]),
    "header-only": (lambda lines: lines[:1], ["lists no files"]),
    "no-file-column": (lambda lines: ["name,seed"] + [l.split(",", 1)[1] for l in lines[1:]], ["not a shot manifest (expected a CSV with a 'file' column)"]),
    "empty": (lambda lines: [], ["is empty: not a shot manifest"]),
}


@pytest.mark.parametrize("name", list(MANIFEST_CASES))
def test_shot_manifests_are_checked_row_by_row(tmp_path, shots, name):
    root, files = shots
    make, fragments = MANIFEST_CASES[name]
    lines = make(manifest_lines(root, files))
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    refused(lambda: read_shot_manifest(path, root), path, *fragments)


def test_a_byte_order_mark_and_a_manifest_without_checksums_are_accepted(tmp_path, shots):
    root, files = shots
    lines = manifest_lines(root, files)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())  # as spreadsheets save it
    assert read_shot_manifest(tmp_path / "bom.csv", root) == [Path(root) / Path(f).relative_to(root) for f in files]
    (tmp_path / "plain.csv").write_text("file\n" + "\n".join(Path(f).relative_to(root).as_posix() for f in files) + "\n")
    assert len(read_shot_manifest(tmp_path / "plain.csv", root)) == 3  # no sha256 column: nothing to check, nothing left blank


def test_the_kit_reads_back_its_own_manifests_and_empty_heldout_lists(tmp_path, shots):
    root, files = shots
    write_shot_manifest(tmp_path / "shots.csv", files, root, seed=0)
    assert read_shot_manifest(tmp_path / "shots.csv", root) == list(files)
    write_shot_manifest(tmp_path / "heldout.csv", [], root, seed=0)  # every training normal was a shot
    from ppad_nb.runs import run_heldout
    assert run_heldout(tmp_path, root) == []


SMALL = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 3, "--batch-size", 3, "--device", "cpu"]


@pytest.mark.parametrize("content, fragments", [
    (b"", ["is empty: not a shot manifest"]),
    (b"file,seed,sha256\n", ["lists no files"]),
    (b"\xef\xbb\xbffile,seed,sha256\nchest_xray/train/NORMAL/missing.png,0," + b"0" * 64 + b"\n", ["missing.png", "not found"]),
])
def test_shots_file_errors_are_one_line_from_ppad_train(tmp_path, content, fragments):
    (tmp_path / "shots.csv").write_bytes(content)
    result = call_all(cli.train_command, *SMALL, "--out", tmp_path / "run", "--shots-file", tmp_path / "shots.csv", prog="ppad-train")
    assert_user_error(result, *fragments)
    assert "--shots 0" not in result.stderr and "closed file" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_repeated_row_is_refused_by_ppad_train(tmp_path, shots):
    root, files = shots
    lines = manifest_lines(root, files)
    (tmp_path / "shots.csv").write_text("\n".join(lines + [lines[1]] * 2) + "\n")
    assert_user_error(call_all(cli.train_command, *SMALL, "--out", tmp_path / "run", "--shots-file", tmp_path / "shots.csv", prog="ppad-train"),
                      tmp_path / "shots.csv", "twice")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------------------
# 6. metrics.json as ppad-predict --run reads it

def points(**threshold_of):
    return {"operating_points": [{"name": name, "threshold": value} for name, value in threshold_of.items()]}


METRICS_CASES = {  # name: (file content as text, fragments)
    "invalid-json": ('{"operating_points": [', ["is damaged (not valid JSON"]),
    "empty-file": ("", ["is damaged (not valid JSON"]),
    "threshold-nan": ('{"operating_points": [{"name": "heldout_normals_95", "threshold": NaN}]}', ["operating point heldout_normals_95: its threshold nan is not a score from 0 to 1"]),
    "threshold-infinity": ('{"operating_points": [{"name": "heldout_normals_95", "threshold": Infinity}]}', ["its threshold inf is not a score"]),
    "threshold-minus-infinity": ('{"operating_points": [{"name": "heldout_normals_95", "threshold": -Infinity}]}', ["its threshold -inf"]),
    "threshold-7.5": (json.dumps(points(heldout_normals_95=7.5)), ["its threshold 7.5 is not a score from 0 to 1"]),
    "threshold-negative": (json.dumps(points(heldout_normals_95=-0.1)), ["its threshold -0.1 is not a score"]),
    "threshold-a-string": (json.dumps(points(heldout_normals_95="0.5")), ["its threshold '0.5' is not a score"]),
    "threshold-true": (json.dumps(points(heldout_normals_95=True)), ["its threshold True is not a score"]),
    "threshold-null": (json.dumps(points(heldout_normals_95=None)), ["its threshold None is not a score"]),
    "threshold-a-list": (json.dumps(points(heldout_normals_95=[0.5])), ["its threshold [0.5] is not a score"]),
    "threshold-missing": (json.dumps({"operating_points": [{"name": "heldout_normals_95"}]}), ["its threshold None"]),
    "points-a-string": (json.dumps({"operating_points": "heldout_normals_95=0.4"}), ["its operating_points is not a list of {name, threshold} objects"]),
    "points-a-dict": (json.dumps({"operating_points": {"heldout_normals_95": 0.4}}), ["its operating_points is not a list"]),
    "points-of-strings": (json.dumps({"operating_points": ["heldout_normals_95"]}), ["its operating_points is not a list"]),
    "point-name-a-number": (json.dumps({"operating_points": [{"name": 95, "threshold": 0.4}]}), ["its operating_points is not a list"]),
    "top-level-a-list": (json.dumps([points(heldout_normals_95=0.4)]), ["its operating_points is not a list"]),
    "no-operating-points": (json.dumps({"auc": 0.9}), ["its operating_points is not a list"]),
    "point-missing": (json.dumps(points(fixed_0_5=0.5)), ["has no operating point 'heldout_normals_95' (it has: fixed_0_5)"]),
}


@pytest.mark.parametrize("name", list(METRICS_CASES))
def test_operating_points_are_checked_where_read(tmp_path, name):
    content, fragments = METRICS_CASES[name]
    (tmp_path / "metrics.json").write_text(content)
    refused(lambda: read_operating_point(tmp_path, "heldout_normals_95"), tmp_path / "metrics.json", *fragments)


def test_operating_point_not_utf8_and_not_a_report(tmp_path):
    (tmp_path / "metrics.json").write_bytes(b'{"operating_points": "\xff\xfe"}')
    refused(lambda: read_operating_point(tmp_path, "heldout_normals_95"), tmp_path / "metrics.json", "not valid JSON")
    refused(lambda: read_operating_point(tmp_path / "elsewhere", "heldout_normals_95"), tmp_path / "elsewhere", "not a report folder")


@pytest.mark.parametrize("threshold", [0, 0.4, 1])
def test_operating_points_in_the_score_range_are_read(tmp_path, threshold):
    (tmp_path / "metrics.json").write_text(json.dumps(points(fixed_0_5=0.5, heldout_normals_95=threshold)))
    assert read_operating_point(tmp_path, "heldout_normals_95") == threshold


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny):
    "A tiny finished run with a report of its own writing: the operating points are what the tests change."
    from ppad_nb.runs import train
    out = tmp_path_factory.mktemp("run") / "run"
    train("demo", clip=tiny, out=out, epochs=1, shots=3, batch_size=3, progress=False)
    (out / "report").mkdir()
    return out


@pytest.mark.parametrize("content, fragments", [
    ('{"operating_points": [{"name": "heldout_normals_95", "threshold": NaN}]}', ["threshold nan"]),
    (json.dumps(points(heldout_normals_95="high")), ["threshold 'high'"]),
    ('{"operating_points": [{"name": ', ["not valid JSON"]),
])
def test_ppad_predict_run_refuses_invalid_operating_points_in_one_line(trained_run, content, fragments):
    (trained_run / "report" / "metrics.json").write_text(content)
    image = sorted((PARITY / "images").iterdir())[0]
    result = call_all(cli.predict, image, "--run", trained_run, "--device", "cpu", prog="ppad-predict")
    assert_user_error(result, trained_run / "report" / "metrics.json", *fragments)
    assert result.stdout == ""


def test_ppad_predict_run_uses_a_valid_operating_point(trained_run):
    from ppad_nb.runs import clip_source_of, report_made_with
    from ppad_nb.runs import read_run_state, run_learner
    made_with = report_made_with(run_learner(trained_run), clip_source_of(read_run_state(trained_run)["clip"]["spec"]), None)  # the run as it is
    (trained_run / "report" / "metrics.json").write_text(json.dumps({**points(heldout_normals_95=0.25), "made_with": made_with}))
    image = sorted((PARITY / "images").iterdir())[0]
    result = call_all(cli.predict, image, "--run", trained_run, "--device", "cpu", "--json", prog="ppad-predict")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["threshold"], record["operating_point"]) == (0.25, "heldout_normals_95")
    assert record["decision"] == ("abnormal" if record["score"] > 0.25 else "normal")


# ---------------------------------------------------------------------------------------------------------------
# 7. ppad-predict with a file name that is not UTF-8

def test_predict_draws_the_figure_of_a_file_whose_name_is_not_utf8(tmp_path):
    name = os.fsdecode(b"scan-\xff\xfe.png")
    image = copy_images([sorted((PARITY / "images").iterdir())[0]], tmp_path / "in")[0].rename(tmp_path / "in" / name)
    result = subprocess.run([str(Path(sys.executable).parent / "ppad-predict"), image, "--clip-weights", PARITY / "clip_tiny.pt", "--learner",
                             PARITY / "learner_tiny.pt", "--device", "cpu", "--out", tmp_path / "figures"], capture_output=True, timeout=600)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith(os.fsencode(image) + b": score "), result.stdout  # the name printed as it is on disk
    figures = sorted(os.listdir(os.fsencode(tmp_path / "figures")))
    assert figures == [b".ppad-made", b"scan-\xff\xfe.png"]  # the figure keeps the image's name, byte for byte (.ppad-made: the kit's list)
    assert (tmp_path / "figures" / name).read_bytes()[:4] == b"\x89PNG"
