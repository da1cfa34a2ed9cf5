#!/usr/bin/env python
"""Check a BMAD chest folder (or MVFA's copy of it) and report what PPAD would read from it.

BMAD ships each benchmark as {train,valid,test}/{good,Ungood}/img/ (MVFA's copy, Chest_AD/, has only valid/ and test/).
PPAD trains on normal images only: its training normals are train/good/img and valid/good/img; its test set is
test/good/img (normal) and test/Ungood/img (abnormal). valid/Ungood/img, the abnormal images MVFA's few-shot
training uses, is counted but never read. With --seeds FILE, an MVFA few-shot file (lines n-K: ... and a-K: ...) is
checked against the training normals: every n- line must name existing normal images (its a- lines are not used).
With --verify, every image PPAD would read is decoded. Nothing is written, renamed or deleted.
"""
import argparse
import sys
from pathlib import Path

from ppad_nb.console import format_table, run_script
from ppad_nb.safety import input_error
from ppad_nb.data import _child, _mvfa_lines, list_images, read_bmad, read_grayscale, read_mvfa_shots


def parser():
    p = argparse.ArgumentParser(prog="prepare_bmad.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the benchmark's folder (holding valid/ and test/, and train/ when BMAD's own)")
    p.add_argument("--seeds", default=None, help="an MVFA few-shot file (e.g. fewshot_seed/Chest/4-shot.txt) to check against the normals")
    p.add_argument("--verify", action="store_true", help="decode every image PPAD would read (finds truncated or corrupt files)")
    return p


def folder_counts(root: Path) -> list:
    "One row per split and label folder: its path, what PPAD does with it, and its image count (0 when absent)."
    rows = []
    for split, label, use in [("train", "good", "train (normal)"), ("valid", "good", "train (normal)"), ("valid", "Ungood", "not used"),
                              ("test", "good", "test (normal)"), ("test", "Ungood", "test (abnormal)")]:
        folder = _child(_child(_child(root, split), label), "img")
        rows.append([f"{split}/{label}/img", use, len(list_images(folder)) if folder.is_dir() else 0])
    return rows


def main(argv=None):
    args = parser().parse_args(argv)
    root = Path(args.root)
    if not root.is_dir(): raise input_error(root, "folder not found")
    train, test = read_bmad(root, "train"), read_bmad(root, "test")  # the errors PPAD would give, before any count
    print(format_table(["folder", "PPAD", "images"], folder_counts(root)))
    if args.seeds is not None:
        path = Path(args.seeds)
        if not path.is_file(): raise input_error(path, "seed file not found")
        draws = sorted(k for t, k in _mvfa_lines(path) if t == "n")
        if not draws: raise input_error(path, "has no line n-K (MVFA's draws of normal images)")
        for draw in draws: read_mvfa_shots(path, train.normals(), draw)
        print(f"{path}: draws {', '.join(f'n-{d}' for d in draws) } name normal images of {root} (their a- lines are not used)")
    if args.verify:
        from tqdm.auto import tqdm
        for f in tqdm(train.files + test.files, desc="decoding", unit="image", disable=None): read_grayscale(f)
    print(f"{root}: ready for ppad-nb (layout 'bmad', preset bmad-chest: --data {root})")


if __name__ == "__main__":
    sys.exit(run_script(main, prog="prepare_bmad.py"))
