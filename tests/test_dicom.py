"DICOM files made with pydicom from the bundled PNGs read back as the PNG's pixels; what cannot be read is a one-line error."
import numpy as np
import pytest

from conftest import assert_user_error, run
from ppad_nb.safety import PPADError
from ppad_nb.data import is_dicom, list_images, load_image, read_dicom, read_grayscale, write_dicom

# name: (photometric, bits stored, window (centre, width) or None)
CASES = {f"{p.lower()}-{bits}bit{'-window' if window else ''}": (p, bits, window)
         for p in ("MONOCHROME2", "MONOCHROME1") for bits in (8, 12) for window in (None, "full")}


def stored_values(png_pixels, photometric, bits):
    "What a scanner would store for these 8-bit pixels: scaled to the stored range, inverted for MONOCHROME1."
    top = 2 ** bits - 1
    values = np.rint(png_pixels.astype(np.float64) * top / 255).astype(np.uint16)
    return top - values if photometric == "MONOCHROME1" else values


@pytest.fixture(scope="module")
def xray(sample):
    "A bundled test X-ray (pneumonia) and its 8-bit pixels."
    path = sample[1].files[-1]
    return path, np.array(read_grayscale(path))


@pytest.mark.parametrize("name", list(CASES))
def test_dicom_pixels_equal_the_png(tmp_path, xray, name):
    path, pixels = xray
    photometric, bits, window = CASES[name]
    # a window over the whole stored range, centre 2^(b-1) and width 2^b: with the standard's LINEAR formula it maps
    # stored value x to x * 255 / (2^b - 1), i.e. back to the PNG's grey levels
    window = (2 ** (bits - 1), 2 ** bits) if window else None
    dicom = write_dicom(tmp_path / f"{name}.dcm", stored_values(pixels, photometric, bits), photometric, bits, window)
    assert is_dicom(dicom)
    side = pixels.shape[0]
    decoded = load_image(dicom, size=side)  # native size: the decoded pixels themselves
    if bits == 8: np.testing.assert_array_equal(decoded, pixels)
    else: assert np.abs(decoded.astype(int) - pixels).max() <= 1
    if bits == 8: np.testing.assert_array_equal(load_image(dicom), load_image(path))  # and after the resize to 224


def test_rescale_slope_intercept_then_window(tmp_path):
    # stored 0..4000 step 1000; modality: x * 0.5 + 100 -> 100, 600, 1100, 1600, 2100; window c 1100, w 1001:
    # LINEAR: 0 at or below 599.5, 255 above 1599.5, else ((v - 1099.5) / 1000 + 0.5) * 255
    stored = np.array([[0, 1000, 2000, 3000, 4000]], np.uint16)
    dicom = write_dicom(tmp_path / "ct.dcm", stored, bits_stored=12, window=(1100, 1001), slope=0.5, intercept=100)
    expected = [0, round(((600 - 1099.5) / 1000 + 0.5) * 255), round(((1100 - 1099.5) / 1000 + 0.5) * 255), 255, 255]
    assert read_dicom(dicom)[0].tolist() == expected == [0, 0, 128, 255, 255]
    # without a window, the stored range 0..4095 after the modality LUT (100..2147.5) is mapped to 0..255
    plain = write_dicom(tmp_path / "plain.dcm", stored, bits_stored=12, slope=0.5, intercept=100)
    assert read_dicom(plain)[0].tolist() == [round((v * 0.5) * 255 / (4095 * 0.5)) for v in (0, 1000, 2000, 3000, 4000)]


def test_voi_lut_function_sigmoid_and_linear_exact(tmp_path):
    stored = np.array([[0, 100, 200]], np.uint8)
    sigmoid = write_dicom(tmp_path / "s.dcm", stored, window=(100, 50), voi_function="SIGMOID")
    assert read_dicom(sigmoid)[0].tolist() == [round(255 / (1 + np.exp(-4 * (v - 100) / 50))) for v in (0, 100, 200)]
    exact = write_dicom(tmp_path / "e.dcm", np.array([[60, 100, 139]], np.uint8), window=(100, 80), voi_function="LINEAR_EXACT")
    assert read_dicom(exact)[0].tolist() == [0, round(127.5), round(((139 - 100) / 80 + 0.5) * 255)]


def test_a_dicom_without_suffix_is_found_by_its_preamble(tmp_path, xray):
    path, pixels = xray
    folder = tmp_path / "scans"
    (folder).mkdir()
    write_dicom(folder / "IM0001", pixels)
    (folder / "notes").write_text("not an image")
    assert [p.name for p in list_images(folder)] == ["IM0001"]
    np.testing.assert_array_equal(load_image(folder / "IM0001"), load_image(path))


def dataset(**fields):
    "A minimal dataset to write by hand."
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = fields.pop("sop", SecondaryCaptureImageStorage)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = fields.pop("syntax", ExplicitVRLittleEndian)
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    for key, value in fields.items(): setattr(ds, key, value)
    return ds


def image_fields(**more):
    return dict(Rows=4, Columns=4, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2", BitsAllocated=8, BitsStored=8,
                HighBit=7, PixelRepresentation=0, **more)


def test_what_cannot_be_read_is_named(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import BasicTextSRStorage, JPEGLSLossless
    multi = dataset(**image_fields(NumberOfFrames=2, PixelData=bytes(32)))
    multi.save_as(tmp_path / "cine.dcm", enforce_file_format=True)
    report = dataset(sop=BasicTextSRStorage, Modality="SR")
    report.save_as(tmp_path / "report.dcm", enforce_file_format=True)
    compressed = dataset(syntax=JPEGLSLossless, **image_fields(PixelData=encapsulate([b"\xff\xd8 not really JPEG-LS \xff\xd9"])))
    compressed["PixelData"].VR = "OB"
    compressed.save_as(tmp_path / "jpegls.dcm", enforce_file_format=True)
    colour = dataset(**{**image_fields(PixelData=bytes(48)), "SamplesPerPixel": 3, "PhotometricInterpretation": "RGB", "PlanarConfiguration": 0})
    colour.save_as(tmp_path / "colour.dcm", enforce_file_format=True)
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    expected = {"cine.dcm": "multi-frame DICOM (2 frames)", "report.dcm": "DICOM object without an image",
                "jpegls.dcm": "pip install 'ppad-nb[dicom]'", "colour.dcm": "colour DICOM (RGB)", "broken.dcm": "DICOM"}
    for name, fragment in expected.items():
        with pytest.raises(PPADError, match=None) as error: load_image(tmp_path / name)
        assert str(error.value).startswith(f"{tmp_path / name}: ") and fragment in str(error.value), str(error.value)
        assert "\n" not in str(error.value)


def test_commands_read_dicom_and_refuse_bad_ones_in_one_line(tmp_path, xray):
    from conftest import FIXTURES
    path, pixels = xray
    folder = tmp_path / "scans"
    write_dicom(folder / "a.dcm", pixels)
    fixture = FIXTURES / "parity-tiny"
    ok = run("ppad-score", "--clip-weights", fixture / "clip_tiny.pt", "--learner", fixture / "learner_tiny.pt", "--images", folder,
             "--out", tmp_path / "scores.csv", "--device", "cpu")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "scores.csv").read_text().splitlines()[1].startswith("a.dcm,")
    dataset(**image_fields(NumberOfFrames=3, PixelData=bytes(48))).save_as(folder / "b.dcm", enforce_file_format=True)
    bad = run("ppad-score", "--clip-weights", fixture / "clip_tiny.pt", "--learner", fixture / "learner_tiny.pt", "--images", folder,
              "--out", tmp_path / "again.csv", "--device", "cpu")
    assert_user_error(bad, folder / "b.dcm", "multi-frame")
    assert not (tmp_path / "again.csv").exists()


def test_voi_lut_sequence_wins_over_the_window(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset
    stored = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ds = pydicom.dcmread(write_dicom(tmp_path / "plain.dcm", stored, window=(10, 20)))
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 12]  # 256 entries from stored value 0, 12-bit output
    lut.add_new(0x00283006, "US", [4095 - 16 * i for i in range(256)])  # LUT Data: an inverting ramp
    ds.VOILUTSequence = [lut]
    ds.save_as(tmp_path / "lut.dcm", enforce_file_format=True)
    expected = np.rint((4095 - 16 * stored.astype(np.float64)) * 255 / 4095)
    np.testing.assert_array_equal(read_dicom(tmp_path / "lut.dcm"), expected)
