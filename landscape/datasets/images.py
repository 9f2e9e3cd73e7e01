"""Class-per-folder images (``imagefolder:DIR``): ``DIR/<class>/<image>``, with ``DIR/train`` and ``DIR/val`` (or
``DIR/test``) used per split when present.

Images keep their own size when they all share one; otherwise ``--image-size N`` resizes the shorter side to N
and centre-crops N x N. Never a silent upscale.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from landscape.datasets.base import RawImages, check_split
from landscape.errors import LandscapeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def load_imagefolder(root: str, split: str = "train", image_size: int | None = None) -> RawImages:
    """RGB images in [0, 1], labels by sorted class folder, ImageNet normalization as the default."""
    check_split(split)
    if not os.path.isdir(root):
        raise LandscapeError(f"image folder not found: {root!r}; pass --data imagefolder:DIR with one "
                             "sub-folder per class")
    if image_size is not None and image_size < 1:
        raise LandscapeError(f"--image-size must be a positive number of pixels; got {image_size}")
    sub = {"train": ("train",), "test": ("val", "test")}[split]
    folder = next((os.path.join(root, s) for s in sub if os.path.isdir(os.path.join(root, s))), root)
    from PIL import Image, UnidentifiedImageError

    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if not classes:
        raise LandscapeError(f"no class sub-folders in {folder!r}; expected DIR/<class>/<image files>")
    files = [(os.path.join(folder, c, fn), ci) for ci, c in enumerate(classes)
             for fn in sorted(os.listdir(os.path.join(folder, c))) if fn.lower().endswith(EXTS)]
    if not files:
        raise LandscapeError(f"no images found under {folder!r} (looked for {', '.join(EXTS)})")
    images = []
    for p, _ in files:
        try:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise LandscapeError(f"unreadable image {p!r} ({type(e).__name__}); remove or replace it")
    sizes = Counter(im.size for im in images)
    if image_size is None:
        if len(sizes) > 1:
            (a, _), (b, _) = sizes.most_common(2)
            raise LandscapeError(f"the images in {folder!r} differ in size ({len(sizes)} sizes, e.g. {a[0]}x{a[1]} "
                                 f"and {b[0]}x{b[1]}); pass --image-size N to resize the shorter side to N and "
                                 "centre-crop N x N")
        arrays = [np.asarray(im, dtype=np.uint8) for im in images]
    else:
        from torchvision.transforms import functional as TF

        arrays = [np.asarray(TF.center_crop(TF.resize(im, image_size), image_size), dtype=np.uint8) for im in images]
    x = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y = np.asarray([ci for _, ci in files], dtype=np.int64)
    return RawImages(x, y, f"imagefolder:{root}", len(classes), IMAGENET_MEAN, IMAGENET_STD)
