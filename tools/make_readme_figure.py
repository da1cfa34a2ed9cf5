#!/usr/bin/env python
"Draw nbs/images/overview.png, the README's picture: the five regions, and one SAS anomaly in each, on real X-rays."
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ppad_nb.synthesis import outline
from ppad_nb.data import REGION_LABELS, REGION_NAMES, bundled_sample, load_image, region_masks
from ppad_nb.synthesis import synthesize_anomaly

files = bundled_sample("train").files
fig, axes = plt.subplots(2, 5, figsize=(12.5, 5.6))
for region in range(5):
    image = load_image(files[5])
    axes[0, region].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0, region].imshow(np.ma.masked_equal(region_masks()[region], 0), cmap="autumn", alpha=0.35, vmin=0, vmax=1)
    axes[0, region].set_title(f"region {region}: '{REGION_NAMES[region]}'", fontsize=10)
    other = load_image(files[10 + region])
    result = synthesize_anomaly(other, region, rng=[3, 1, 8, 0, 5][region], strength=[-0.99, 2.0, -0.999, 3.0, -0.99][region])
    tile = np.repeat(result.image[..., None], 3, axis=2)
    tile[outline(result.mask)] = (255, 64, 64)
    axes[1, region].imshow(tile)
    axes[1, region].set_title(f"SAS in {REGION_LABELS[region]}, w = {result.strength:g}", fontsize=10)
for ax in axes.flat: ax.axis("off")
fig.suptitle("Position guidance (top) and structure-preserving anomaly synthesis (bottom) on real ZhangLab X-rays", fontsize=11)
fig.tight_layout()
fig.savefig("nbs/images/overview.png", dpi=72)
print("wrote nbs/images/overview.png")
