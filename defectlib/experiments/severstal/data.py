"""Datasets in the form of the Severstal two-stage paper (paper 001): one mask channel per defect class.

A *task* is one dataset seen as the paper sees Severstal: images ``[1, H, W]``, masks ``[C, H, W]``
with one channel per defect class (no background channel, one sigmoid each), a defective/clean flag
per image, and seeded train / val / test splits. Severstal itself (or its generated stand-in) gives
4 classes; on this machine two real datasets stand in for it: NEU-Seg (3 classes, every image
defective: the segmentation stage) and MTD (5 classes plus 952 clean tiles: gate + segmentation).

The training batches (Sec. 5.1): random crops whose size alternates by epoch (256x384, 256x512),
dark crops rejected, batches with every class in equal proportion *including the clean class*,
flips / rotation / shift and brightness / contrast: the data module's
:class:`~defectlib.data.sampling.ClassBalancedBatchSampler`, ``RandomCropDataset`` and
``transforms.segmentation_train``, put together by :func:`seg_loader`; the gate's: full images,
clean and defective in equal numbers (:func:`gate_loader`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ...data.sampling import ClassBalancedBatchSampler, RandomCropDataset, primary_labels
from ...data.splits import MTD_NEAR_DUPLICATES, grouped_split, groups_from_pairs, stratified_split
from ...data.transforms import segmentation_train

# --- tasks ---------------------------------------------------------------------------------------
class Channels(Dataset):
    """``base[i]`` -> ``(image [1,H,W], mask [C,H,W] float)`` through ``to_channels``, resized to
    ``size`` (image bilinear, mask nearest) when given. ``self.classes[i]``: defect classes present
    (0-based class indices: the channels, unless several classes share one), ``self.defective[i]``:
    any of them.

    ``cache=True`` decodes and resizes each image once and keeps it in memory (the image as
    float32, the binary mask as uint8: about (4 + C) bytes per pixel), returning copies, so every
    later read gives the same values without touching the disk; worth it when decoding and resizing
    large tiles costs more than a training step uses them (MTD in notebook 02's cpu profile)."""

    def __init__(self, base: Dataset, to_channels: Callable, classes: list[list[int]],
                 size: tuple[int, int] | None = None, ids: Sequence[str] | None = None,
                 cache: bool = False):
        self.base, self.to_channels, self.size = base, to_channels, size
        self.classes = classes
        self.defective = [bool(c) for c in classes]
        self.ids = list(ids) if ids is not None else [str(i) for i in range(len(base))]
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.base)

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.to_channels(self.base[i])
        if self.size is not None and tuple(image.shape[-2:]) != tuple(self.size):
            image = F.interpolate(image[None], size=self.size, mode="bilinear", antialias=True,
                                  align_corners=False)[0].clamp_(0, 1)
            mask = F.interpolate(mask[None], size=self.size, mode="nearest")[0]
        return image, mask.float()

    def __getitem__(self, i: int):
        if self._cache is None:
            image, mask = self._load(i)
        else:
            if i not in self._cache:
                image, mask = self._load(i)
                if not bool(((mask == 0) | (mask == 1)).all()):
                    raise ValueError(f"{self.ids[i]}: cache=True needs a binary mask")
                self._cache[i] = (image, mask.to(torch.uint8))
            image, mask = self._cache[i]
            image, mask = image.clone(), mask.float()
        return tv_tensors.Image(image), tv_tensors.Mask(mask)


class Subset(Dataset):
    """``Channels`` restricted to ``indices``, keeping ``classes`` / ``defective`` / ``ids``."""

    def __init__(self, ds: Channels, indices: Sequence[int]):
        self.ds, self.indices = ds, list(indices)
        self.classes = [ds.classes[i] for i in self.indices]
        self.defective = [ds.defective[i] for i in self.indices]
        self.ids = [ds.ids[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.ds[self.indices[i]]


@dataclass(eq=False)
class Task:
    """One dataset in the paper's form. ``dataset`` names it in results; ``real`` says whether it
    is real data; ``stands_in_for`` is "Severstal" unless it is Severstal itself."""

    dataset: str
    real: bool
    class_names: tuple[str, ...]
    train: Subset
    val: Subset
    test: Subset
    crops: tuple[tuple[int, int], ...]
    stands_in_for: str | None = "Severstal"
    notes: list[str] = field(default_factory=list)
    defect_p: float = 0.0            # share of training crops centred near a defect (seg_loader)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        def part(s):
            return f"{len(s)} ({sum(s.defective)} defective)"
        what = f"{self.dataset} ({'real' if self.real else 'generated stand-in'}"
        what += f", standing in for {self.stands_in_for})" if self.stands_in_for else ")"
        return (f"{what}: classes {', '.join(self.class_names)}; train {part(self.train)}, "
                f"val {part(self.val)}, test {part(self.test)}; crops {self.crops}")


def _limit(indices: list[int], limit: int | None, seed: int) -> list[int]:
    if limit is None or len(indices) <= limit:
        return indices
    return sorted(np.random.default_rng(seed).choice(indices, limit, replace=False).tolist())


# the ``to_channels`` of each task: module-level, so a task pickles for spawned loader workers
def _plain(s):
    return s[0].as_subclass(torch.Tensor), s[1].as_subclass(torch.Tensor)


def _neu_seg_one_hot(s):
    m = s[1].as_subclass(torch.Tensor)
    return s[0].as_subclass(torch.Tensor), torch.stack([(m == k) for k in (1, 2, 3)]).float()


class _MTDChannels:
    """MTD's mask into its class's channel (5 channels), or into one "defect" channel."""

    def __init__(self, one_channel: bool):
        self.one_channel = one_channel

    def __call__(self, s):
        image, mask, label = s
        out = torch.zeros(1 if self.one_channel else 5, *mask.shape[-2:])
        if label:
            out[0 if self.one_channel else label - 1] = mask.as_subclass(torch.Tensor)[0]
        return image.as_subclass(torch.Tensor), out


def severstal_task(root, real: bool, scale: float = 1.0, crops=((256, 384), (256, 512)),
                   val_fraction=0.15, test_fraction=0.15, seed=0) -> Task:
    """Severstal (or its stand-in) with images and masks resized by ``scale``; strata = the set of
    classes present, so every split has clean images and every class combination."""
    from ...data.severstal import Severstal
    base = Severstal(root)
    size = None if scale == 1 else (round(256 * scale), round(1600 * scale))
    ds = Channels(base, _plain, [[c - 1 for c in lab] for lab in base.labels], size, base.ids)
    strata = ["".join(map(str, c)) or "clean" for c in ds.classes]
    tr, va, te = grouped_split(strata, (val_fraction, test_fraction), seed=seed)
    return Task("Severstal" if real else "Severstal stand-in", real, ("1", "2", "3", "4"),
                Subset(ds, tr), Subset(ds, va), Subset(ds, te), tuple(map(tuple, crops)),
                stands_in_for=None if real else "Severstal")


def neu_seg_task(root, real: bool, crops=((160, 160), (160, 192)), val_fraction=0.15,
                 train_limit: int | None = None, test_limit: int | None = None, seed=0) -> Task:
    """NEU-Seg: the official training split -> train / val (seeded), the official test split minus
    the test images that near-duplicate a training image (SOURCE.md) -> test. 3 classes."""
    from ...data.neu_seg import NEUSeg
    from ...data.splits import neu_seg_clean_test_ids

    def classes_of(ds):
        return [[k - 1 for k in (1, 2, 3) if (ds.load_arrays(i)[1] == k).any()] for i in range(len(ds))]

    train_base = NEUSeg(root, "training")
    test_ids = neu_seg_clean_test_ids(root)
    test_base = NEUSeg(root, "test", ids=test_ids)
    train_all = Channels(train_base, _neu_seg_one_hot, classes_of(train_base), ids=train_base.ids)
    test_all = Channels(test_base, _neu_seg_one_hot, classes_of(test_base), ids=test_base.ids)
    strata = ["".join(map(str, c)) for c in train_all.classes]
    tr, va = stratified_split(strata, val_fraction, seed)
    task = Task("NEU-Seg" if real else "NEU-Seg stand-in", real, ("inclusion", "patches", "scratches"),
                Subset(train_all, _limit(tr, train_limit, seed)), Subset(train_all, va),
                Subset(test_all, _limit(list(range(len(test_all))), test_limit, seed)),
                tuple(map(tuple, crops)))
    dropped = 840 - len(test_base) if real else 0
    task.notes.append(f"NEU-Seg test: {len(test_base)} images ({dropped} near-duplicates of training "
                      "images dropped, see SOURCE.md); val = a seeded 15% of the training split")
    return task


def mtd_task(root, real: bool, size=(192, 192), crops=((160, 160), (160, 192)), val_fraction=0.15,
             test_fraction=0.15, seed=0, one_channel: bool = False, cache: bool = False) -> Task:
    """MTD: 5 defect classes (one channel each) + clean ``Free`` tiles, resized to ``size``
    (tile sizes vary); stratified by folder. Defective = the mask has a defect pixel.

    ``one_channel``: a single "defect" channel for every class (not the paper's one channel per
    class); ``classes`` still name each tile's defect class, so batches stay class-balanced.
    ``cache``: keep the decoded, resized tiles in memory (:class:`Channels`)."""
    from ...data.mtd import MTD
    base = MTD(root, with_label=True)

    classes = [[lab - 1] if lab and (base.load_arrays(i)[1] > base.threshold).any() else []
               for i, lab in enumerate(base.labels)]
    ds = Channels(base, _MTDChannels(one_channel), classes, tuple(size), base.ids, cache=cache)
    near_duplicates = groups_from_pairs(base.ids, MTD_NEAR_DUPLICATES)  # never across splits
    tr, va, te = grouped_split(base.labels, (val_fraction, test_fraction), seed=seed, groups=near_duplicates)
    names = ("defect",) if one_channel else tuple(MTD.CLASSES[1:])
    return Task("MTD" if real else "MTD stand-in", real, names,
                Subset(ds, tr), Subset(ds, va), Subset(ds, te), tuple(map(tuple, crops)))




def build_tasks(cfg, data_root=None, seed: int = 0) -> tuple[Task, Task]:
    """(segmentation task, gate task) of notebook 02 for profile ``cfg``:

    - real Severstal at ``<data_root>/severstal``: Severstal for both;
    - else real NEU-Seg and MTD under ``data_root``: NEU-Seg for the U-Net alone and MTD for the
      gate + U-Net (both real, standing in for Severstal);
    - else the generated Severstal stand-in for both (the embedded default).
    """
    from ...synth import locate
    from ...paths import real_data_root

    def severstal(real_root=None):
        kwargs = {} if cfg.standin_images is None else {"n_images": cfg.standin_images}
        path, real = locate("severstal", real_root, **kwargs) if real_root else locate("severstal", None, standin=True, **kwargs)
        t = severstal_task(path, real, cfg.severstal_scale, cfg.crops["severstal"], cfg.val_fraction,
                           cfg.test_fraction, seed)
        return t, t

    root = real_data_root(data_root)
    if root is not None and (root / "severstal").is_dir():
        return severstal(root)
    if root is not None and (root / "neu-seg").is_dir() and (root / "mtd").is_dir():
        seg = neu_seg_task(root / "neu-seg", True, cfg.crops["neu-seg"], cfg.val_fraction,
                           cfg.neu_seg_train_limit, cfg.eval_limit, seed)
        gate = mtd_task(root / "mtd", True, cfg.image_size["mtd"], cfg.crops["mtd"], cfg.val_fraction,
                        cfg.test_fraction, seed, one_channel=cfg.mtd_one_channel,
                        cache=cfg.cache_images)
        gate.defect_p = cfg.mtd_defect_p
        return seg, gate
    return severstal()


# --- training batches ----------------------------------------------------------------------------
def augmentations() -> v2.Compose:
    """Paper Sec. 5: random flips, rotation (5 degrees) and shift (5%); brightness and contrast."""
    return segmentation_train(hflip=0.5, vflip=0.5, degrees=5.0, shift=0.05, brightness=0.2, contrast=0.2)


class CropScheduleSampler(ClassBalancedBatchSampler):
    """:class:`~defectlib.data.sampling.ClassBalancedBatchSampler` that also tells the crop dataset
    which epoch starts, so the crop size alternates by epoch (256x384, 256x512, ...)."""

    def __init__(self, crops: RandomCropDataset, labels, batch_size: int, num_batches: int | None, seed: int = 0):
        super().__init__(labels, batch_size, num_batches, seed)
        self.crops = crops

    def __iter__(self):
        self.crops.set_epoch(self.epoch)
        return super().__iter__()


class GateDataset(Dataset):
    """Full images for the classifier: ``ds[i]`` -> (image, 1.0 if defective else 0.0)."""

    def __init__(self, ds: Dataset, transforms=None):
        self.ds, self.transforms = ds, transforms

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        image, mask = self.ds[i]
        if self.transforms is not None:
            image = self.transforms(image)
        return image.as_subclass(torch.Tensor), torch.tensor(float(mask.any()))


def seg_loader(task: Task, batch_size: int, steps_per_epoch: int | None, dark_threshold=0.05,
               seed=0, num_workers=0) -> DataLoader:
    """Class-balanced batches (clean = a class; a multi-class image counts as its rarest class) of
    augmented random crops, the crop size alternating by epoch, dark crops redrawn; a share
    ``task.defect_p`` of the defective images' crops centred near a defect."""
    crops = RandomCropDataset(task.train, task.crops, dark_threshold, transforms=augmentations(), seed=seed,
                              defect_p=task.defect_p)
    labels = primary_labels(task.train.classes, clean="clean")
    sampler = CropScheduleSampler(crops, labels, batch_size, steps_per_epoch, seed)
    return DataLoader(crops, batch_sampler=sampler, num_workers=num_workers)


def gate_loader(task: Task, batch_size: int, steps_per_epoch: int | None, seed=0, num_workers=0) -> DataLoader:
    """Full images, clean and defective in equal numbers (Severstal's own ratio is 44/56)."""
    sampler = ClassBalancedBatchSampler(task.train.defective, batch_size, steps_per_epoch, seed)
    return DataLoader(GateDataset(task.train, augmentations()), batch_sampler=sampler, num_workers=num_workers)


def eval_loader(ds: Dataset, batch_size: int, limit: int | None = None, gate: bool = False,
                seed: int = 0, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Validation / test batches in a fixed order; ``limit`` keeps a seeded random subset (splits
    are ordered by class, so the first images would all be of one kind). ``num_workers`` loader
    processes (kept between passes: the validation loss and the learning curves read their loader
    every epoch) and ``pin_memory`` (where there is a GPU) as the profile sets them
    (:func:`loading`); the batches are the same either way."""
    from ...runtime import pin_memory as pinned
    if limit is not None and limit < len(ds):
        keep = np.sort(np.random.default_rng(seed).choice(len(ds), limit, replace=False))
        ds = _Indexed(ds, keep.tolist())
    return DataLoader(GateDataset(ds) if gate else _Plain(ds), batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=pinned(pin_memory), persistent_workers=num_workers > 0)


def loading(cfg) -> dict:
    """The profile's loader settings for :func:`eval_loader` (the paper profiles: 4 workers, pinned memory);
    under torchrun no more workers than the machine's CPUs shared out among its processes
    (:func:`defectlib.engine.distributed.loader_workers`)."""
    from ...engine import distributed as D
    return {"num_workers": D.loader_workers(cfg.num_workers, D.info()), "pin_memory": cfg.pin_memory}


class _Indexed(Dataset):
    """``ds`` restricted to ``indices``, keeping its ``ids`` (for submissions)."""

    def __init__(self, ds, indices):
        self.ds, self.indices = ds, indices
        self.ids = [ds.ids[i] for i in indices] if hasattr(ds, "ids") else [str(i) for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.ds[self.indices[i]]


class _Plain(Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        image, mask = self.ds[i]
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def demo_batches(task, cfg, seed: int = 0, epochs: int = 2) -> list:
    """The first training batch of each of ``epochs`` epochs, as :func:`seg_loader` draws them
    (class-balanced, the crop size of each epoch): what notebook 02 shows before training (each
    pass takes a draw from the global generator, so its command draws them too)."""
    demo = seg_loader(task, cfg.seg_batch_size, 1, cfg.dark_threshold, seed)
    return [next(iter(demo)) for _ in range(epochs)]    # each pass over the loader is one epoch
