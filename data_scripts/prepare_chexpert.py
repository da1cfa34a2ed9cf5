#!/usr/bin/env python
"""Check an unpacked CheXpert release in the SQUID layout and report what it holds.

The paper uses SQUID's CheXpert split (frontal PA views, 256 x 256):

    train_256_pa/normal_256/*.png                     (normal training images)
    our_test_256_pa/normal_256/*.png                  (normal test images)
    our_test_256_pa/abnormal_256/*.png                (abnormal test images)

The official PPAD loader reads the abnormal folder under the name pneumonia_256, so copies renamed that way exist;
ppad-nb accepts either. With --fix, folders whose names differ from these only in letter case (Normal_256, say)
are renamed to the expected names; nothing is deleted or overwritten. With --verify, every image is decoded,
which finds truncated or corrupt files (slow on the full set).
"""
import argparse
import sys
from pathlib import Path

from ppad_nb.console import format_table, run_script
from ppad_nb.safety import PPADError, input_error
from ppad_nb.data import read_chexpert, read_grayscale

EXPECTED = ["train_256_pa", "train_256_pa/normal_256", "our_test_256_pa", "our_test_256_pa/normal_256"]
ABNORMAL = ("abnormal_256", "pneumonia_256")


def parser():
    p = argparse.ArgumentParser(prog="prepare_chexpert.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the unpacked release: the folder that holds train_256_pa/ and our_test_256_pa/")
    p.add_argument("--fix", action="store_true", help="rename folders that differ only in letter case to the expected names")
    p.add_argument("--verify", action="store_true", help="decode every image (finds truncated or corrupt files)")
    return p


def case_variants(root: Path, relative_paths):
    "(found, expected) pairs for folders whose name matches an expected one except in letter case."
    renames = []
    for relative in relative_paths:
        parent, name = (root / relative).parent, Path(relative).name
        if not parent.is_dir() or (parent / name).is_dir(): continue
        match = [p for p in parent.iterdir() if p.is_dir() and p.name.lower() == name.lower()]
        if match: renames.append((match[0], parent / name))
    return renames


def normalise_names(root: Path, relative_paths, fix: bool):
    "Report (and with `fix`, apply) renames of folders that differ from the expected names only in case."
    for relative in relative_paths:  # parents first, so that children are looked up under their new name
        for found, expected in case_variants(root, [relative]):
            if fix:
                found.rename(expected)
                print(f"renamed {found} -> {expected}")
            else:
                print(f"note: {found} should be named {expected.name}; --fix renames it")


def verify(files):
    from tqdm.auto import tqdm
    for f in tqdm(files, desc="decoding", unit="image", disable=None): read_grayscale(f)


def main(argv=None):
    args = parser().parse_args(argv)
    root = Path(args.root)
    if not root.is_dir(): raise input_error(root, "folder not found")
    normalise_names(root, EXPECTED + [f"our_test_256_pa/{a}" for a in ABNORMAL], args.fix)
    train, test = read_chexpert(root, "train"), read_chexpert(root, "test")
    abnormal_folder = test.files[-1].parent if test.counts()["abnormal"] else None
    rows = [["train", "normal", train.counts()["normal"], str(train.files[0].parent.relative_to(root))],
            ["test", "normal", test.counts()["normal"], str(test.files[0].parent.relative_to(root))],
            ["test", "abnormal", test.counts()["abnormal"], str(abnormal_folder.relative_to(root))]]
    print(format_table(["split", "label", "images", "folder"], rows))
    if args.verify: verify(train.files + test.files)
    print(f"{root}: ready for ppad-nb (layout 'chexpert')")


if __name__ == "__main__":
    sys.exit(run_script(main, prog="prepare_chexpert.py"))
