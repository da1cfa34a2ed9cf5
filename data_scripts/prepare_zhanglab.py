#!/usr/bin/env python
"""Turn the raw ZhangLab (Kermany) chest X-ray download into the layout ppad-nb reads.

The download (Kermany et al. 2018, Mendeley Data doi:10.17632/rscbjbr9sj, or the Kaggle copy "chest-xray-pneumonia")
unpacks to chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg. This script writes, under --out, the SQUID layout
that the paper's code reads, every image as an 8-bit grayscale 256 x 256 PNG (Pillow, bicubic, aspect not kept):

    train/normal_256/*.png    (normal training images; the paper trains on 64 of them per seed)
    test/normal_256/*.png     (234 in the official split)
    test/pneumonia_256/*.png  (390 in the official split)

It never overwrites: an output that exists already is kept (so an interrupted run can simply be restarted), and every
file is written to a temporary name first. The validation split (chest_xray/val) is not used by the paper and is skipped.
Then: ppad-train --preset zhanglab --data OUT ... (or set PPAD_DATA to OUT's parent).
"""
import argparse
import sys
from pathlib import Path

from PIL import Image

from ppad_nb.console import format_table, run_script
from ppad_nb.safety import PPADError, atomic_write, input_error
from ppad_nb.data import read_kermany, read_grayscale

SIZE = 256
TARGET = {("train", 0): "train/normal_256", ("test", 0): "test/normal_256", ("test", 1): "test/pneumonia_256"}


def parser():
    p = argparse.ArgumentParser(prog="prepare_zhanglab.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="the unpacked download: the folder that holds chest_xray/ (or chest_xray itself)")
    p.add_argument("--out", required=True, help="folder to write the SQUID layout into (created if missing)")
    p.add_argument("--check-only", action="store_true", help="only check the download and print its counts")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    splits = {split: read_kermany(source, split) for split in ("train", "test")}
    rows, work = [], []
    for split, images in splits.items():
        for label in sorted(set(images.labels)):
            files = [f for f, l in zip(images.files, images.labels) if l == label]
            folder = out / TARGET[(split, label)]
            todo = [(f, folder / (f.stem + ".png")) for f in files if not (folder / (f.stem + ".png")).exists()]
            work += todo
            rows.append([split, ("normal", "pneumonia")[label], len(files), TARGET[(split, label)], len(files) - len(todo)])
    print(format_table(["split", "label", "images", "written to", "already there"], rows))
    if args.check_only: return
    if out.exists() and not out.is_dir(): raise input_error(out, "exists and is not a folder")
    from tqdm.auto import tqdm
    for file, target in tqdm(work, desc="converting", unit="image", disable=None):
        image = read_grayscale(file).resize((SIZE, SIZE), Image.BICUBIC)
        with atomic_write(target, "wb", record=False) as f: image.save(f, format="PNG")  # a data set, not an output --force replaces
    print(f"wrote {len(work)} images under {out}; the kit reads it with layout 'zhanglab'")


if __name__ == "__main__":
    sys.exit(run_script(main, prog="prepare_zhanglab.py"))
