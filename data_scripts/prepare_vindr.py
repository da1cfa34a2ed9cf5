#!/usr/bin/env python
"""Check an unpacked VinDr-CXR release of the Med-AD benchmark and report what it holds.

Med-AD (from the DDAD paper) ships VinDr-CXR as VinCXR/data.json plus VinCXR/images/*.png. data.json lists file
names: train["0"] are the 4000 normal training images (train["unlabeled"] is not used by PPAD), test["0"] and
test["1"] the normal and abnormal test images (1000 + 1000 in the release the paper used). This script checks that
the index is well formed and that every listed file exists, and prints the counts per split and label. With --fix,
an images folder whose name differs only in letter case (Images/) is renamed to images/. With --verify, every listed
image is decoded. Nothing is deleted or overwritten.
"""
import argparse
import json
import sys
from pathlib import Path

from ppad_nb.console import format_table, run_script
from ppad_nb.safety import PPADError, input_error
from ppad_nb.data import read_grayscale, read_vindr

EXPECTED_COUNTS = {("train", "0"): 4000, ("test", "0"): 1000, ("test", "1"): 1000}


def parser():
    p = argparse.ArgumentParser(prog="prepare_vindr.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the VinCXR folder (holding data.json and images/), or its parent")
    p.add_argument("--fix", action="store_true", help="rename an images folder that differs only in letter case to images/")
    p.add_argument("--verify", action="store_true", help="decode every listed image (finds truncated or corrupt files)")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    root = Path(args.root)
    if not root.is_dir(): raise input_error(root, "folder not found")
    if not (root / "data.json").is_file() and (root / "VinCXR" / "data.json").is_file(): root = root / "VinCXR"
    if not (root / "images").is_dir():
        variants = [p for p in root.iterdir() if p.is_dir() and p.name.lower() == "images"] if root.is_dir() else []
        if variants and args.fix:
            variants[0].rename(root / "images")
            print(f"renamed {variants[0]} -> {root / 'images'}")
        elif variants:
            raise input_error(variants[0], "should be named images; --fix renames it")
        elif (root / "data.json").is_file():
            raise input_error(root / "images", "folder not found (data.json lists files under images/)")
    train, test = read_vindr(root, "train"), read_vindr(root, "test")
    index = json.loads((root / "data.json").read_text())
    rows = []
    for (split, key), images in [(("train", "0"), train), (("test", "0"), test), (("test", "1"), test)]:
        label = int(key)
        count = sum(1 for l in images.labels if l == label)
        note = "" if count == EXPECTED_COUNTS[(split, key)] else f"release has {EXPECTED_COUNTS[(split, key)]}"
        rows.append([split, f'["{key}"]', ("normal", "abnormal")[label], count, note])
    unlabeled = index.get("train", {}).get("unlabeled")
    if isinstance(unlabeled, dict):
        rows.append(["train", '["unlabeled"]', "not used", sum(len(v) for v in unlabeled.values()), ""])
    print(format_table(["split", "key", "label", "images", "note"], rows))
    if args.verify:
        from tqdm.auto import tqdm
        for f in tqdm(train.files + test.files, desc="decoding", unit="image", disable=None): read_grayscale(f)
    print(f"{root}: ready for ppad-nb (layout 'vindr')")


if __name__ == "__main__":
    sys.exit(run_script(main, prog="prepare_vindr.py"))
