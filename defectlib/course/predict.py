"""``defectlib predict MODEL IMAGES --out DIR``: a model notebook 05 exported, run on new images.

    defectlib predict runs/<stamp>-cpu/05_your_own_data/model  line7/*.png  --out line7-masks

``MODEL`` is the folder notebook 05 exports (``model.json``, ``model.pt2``, ``weights.pt``; see
:mod:`defectlib.experiments.yours.export`) or its ``model.json``. ``IMAGES`` are image files and
folders (their images, not their sub-folders). For every image it writes ``DIR/masks/<stem>.png``
(0 background, 255 defect, the image's own size) and ``DIR/overlays/<stem>.png`` (the image with
the mask drawn over it), through the same pipeline as the notebook's evaluation (grey, resized to
the model's input size, fp32, one image at a time, the probability resized back, the threshold
chosen on the validation images or ``--threshold``): the masks equal the ones the notebook scored
(``tests/test_yours_export.py`` checks it). An image that cannot be read stops the run with an
error naming the file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.errors import DatasetError, DatasetNotFoundError, DuplicateFileError, EmptyDatasetError
from ..data.io import IMAGE_EXTS, is_hidden, read_gray, to_image
from ..progress import tqdm
from ..viz import draw_masks


def image_files(items) -> list[Path]:
    """The image files named by ``items`` (files, and the images of folders), in order; a missing
    path, a folder without images or two images with one stem (their outputs would collide) is a
    DatasetError naming it."""
    out: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.suffix.lower() in IMAGE_EXTS and not is_hidden(f) and f.is_file())
            if not found:
                raise EmptyDatasetError(p, f"no images ({', '.join(IMAGE_EXTS)}) in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise DatasetNotFoundError(p, "no such image file or folder")
    seen: dict[str, Path] = {}
    for p in out:
        if p.stem in seen and seen[p.stem] != p:
            raise DuplicateFileError(p, f"{p.name} and {seen[p.stem]} have the same stem {p.stem!r}: their "
                                        "masks would overwrite each other; predict them into separate --out folders")
        seen[p.stem] = p
    return list(dict.fromkeys(out))


def predict_files(model, images, out, threshold: float | None = None, device: str = "cpu",
                  progress: bool = True) -> list[tuple[Path, Path]]:
    """Masks and overlays of ``images`` (see the module docstring) by the exported ``model`` (a
    folder or its ``model.json``); returns the (mask, overlay) paths written, in order."""
    from ..experiments.yours.export import Segmenter
    seg = Segmenter.load(model, threshold=threshold, device=device)
    paths = image_files(images)
    out = Path(out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    bar = tqdm(paths, desc="predict", disable=not progress)
    loaded = []

    def read():
        for p in bar:
            image = to_image(read_gray(p, seg.bit_depth))
            loaded.append((p, image))
            yield image
    written = []
    for prob in seg.probabilities(read()):
        p, image = loaded.pop(0)
        mask = seg.mask(prob)
        mask_path, overlay_path = out / "masks" / f"{p.stem}.png", out / "overlays" / f"{p.stem}.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
        Image.fromarray(draw_masks(image, mask[None]).permute(1, 2, 0).numpy()).save(overlay_path)
        written.append((mask_path, overlay_path))
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="defectlib predict", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="the folder notebook 05 exported (or its model.json)")
    ap.add_argument("images", nargs="+", help="image files and folders of images")
    ap.add_argument("--out", required=True, help="writes masks/<stem>.png and overlays/<stem>.png here")
    ap.add_argument("--threshold", type=float, default=None,
                    help="defect where the probability >= this (default: the model's, chosen on validation)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        ap.error(f"--threshold {args.threshold}: a probability, between 0 and 1")
    try:
        written = predict_files(args.model, args.images, args.out, args.threshold, args.device, not args.quiet)
    except (DatasetError, ValueError) as exc:
        print(f"defectlib predict: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} masks to {Path(args.out) / 'masks'} and overlays to {Path(args.out) / 'overlays'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
