"""What each dataset is, where it officially comes from, and how ``defectlib data fetch`` gets it.

An entry holds the name, paper citation, official source URL, licence note and the on-disk layout
the loader expects. ``files`` lists direct downloads with their SHA-256 where one is public and
stable; :func:`fetch` downloads, verifies the checksum and extracts. Entries without a verified
checksum are refused unless ``allow_unverified=True`` (the computed SHA-256 is printed so you can
pin it). Nothing in the course downloads at run time; tests use a ``file://`` URL.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    sha256: str | None = None  # None: no stable published checksum
    strip_components: int = 0  # drop this many leading folders when extracting (GitHub archives: 1)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    citation: str
    url: str
    license: str
    layout: str
    loader: str
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)
    how_to_get: str = ""


REGISTRY: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo(
        "neu-det", "NEU surface defect database, detection version (6 classes, 1800 images, VOC boxes)",
        "K. Song, Y. Yan, Applied Surface Science 285 (2013) 858-864; Y. He et al., IEEE TIM 69(4) 2020",
        "http://faculty.neu.edu.cn/songkechen/zh_CN/zdylm/263270/list/index.htm",
        "No licence stated; distributed by the authors for research use with citation.",
        "neu-det/IMAGES/<class>_<n>.jpg + neu-det/ANNOTATIONS/<class>_<n>.xml (flat), or "
        "neu-det/{train,validation}/{images,annotations}/; optional neu-det/splits/amff_yolox_{train,test}.txt",
        "defectlib.data.NEUDET",
        (RemoteFile("https://codeload.github.com/siddhartamukherjee/NEU-DET-Steel-Surface-Defect-Detection/zip/"
                    "351bee21b56bbf97a1e1d18262bceb202eb7ef41", "neu-det.zip", None, 1),),
        "The GitHub copy moved 30 images to Validation_Images/ + Validation_Annotations/; move them back "
        "into IMAGES/ + ANNOTATIONS/ (fetch does this)."),
    DatasetInfo(
        "neu-seg", "NEU-Seg: 200x200 steel images, class-index masks (inclusion, patches, scratches)",
        "H. Dong, K. Song, Y. He, J. Xu, Y. Yan, Q. Meng, PGA-Net, IEEE TII 16(12) 2020",
        "https://github.com/DHW-Master/NEU_Seg",
        "No licence stated; NEU research data, cite the authors.",
        "neu-seg/images/{training,test}/<id>.jpg + neu-seg/annotations/{training,test}/<id>.png",
        "defectlib.data.NEUSeg",
        (RemoteFile("https://codeload.github.com/DHW-Master/NEU_Seg/zip/da8cebedb292beca4d101db8c442d5706fac3bfe",
                    "neu-seg.zip", None, 1),)),
    DatasetInfo(
        "mtd", "Magnetic Tile Defects (6 folders incl. defect-free, 1344 image/mask pairs)",
        "Y. Huang, C. Qiu, K. Yuan, Surface defect saliency of magnetic tile, The Visual Computer 36 (2020) 85-96",
        "https://github.com/abin24/Magnetic-tile-defect-datasets.",
        "No licence stated; the README asks users to cite the paper.",
        "mtd/MT_<class>/Imgs/<id>.jpg + <id>.png, class in Blowhole Break Crack Fray Uneven Free",
        "defectlib.data.MTD",
        (RemoteFile("https://codeload.github.com/abin24/Magnetic-tile-defect-datasets./zip/"
                    "cc4eb530b57b9cb7225bf76023873043ffd50655", "mtd.zip", None, 1),)),
    DatasetInfo(
        "severstal", "Severstal: Steel Defect Detection (Kaggle 2019), 12,568 256x1600 strips, 4 classes",
        "Severstal, Kaggle competition 'severstal-steel-defect-detection' (2019)",
        "https://www.kaggle.com/c/severstal-steel-defect-detection",
        "Kaggle competition rules: non-commercial research / competition use; requires a Kaggle account.",
        "severstal/train.csv (ImageId_ClassId,EncodedPixels or ImageId,ClassId,EncodedPixels) + "
        "severstal/train_images/*.jpg (+ test_images/)",
        "defectlib.data.Severstal", (),
        "Accept the rules on Kaggle, then: kaggle competitions download -c severstal-steel-defect-detection; "
        "unzip into <data_root>/severstal."),
    DatasetInfo(
        "nrsd-mn", "NRSD-MN: no-service rail surface defects, 4101 images, man-made + natural, binary masks",
        "D. Zhang, K. Song, J. Xu, Y. He, M. Niu, Y. Yan, MCnet, IEEE TIM 70 (2021) 1-9",
        "https://github.com/zdfcvsn/MCnet",
        "Password-protected archive; the password is sent by the authors on request (zdf_cvsn@163.com).",
        "nrsd-mn/2086/{img,gt} (train), nrsd-mn/1130/965/{img,gt} (test man-made), nrsd-mn/1130/165/{img,gt} "
        "(test natural) -- the OCINet authors' layout; train/, test/man-made/, test/natural/ also read",
        "defectlib.data.NRSDMN", (), "Ask the MCnet authors for the password, unpack, arrange as above."),
    DatasetInfo(
        "ksdd2", "Kolektor Surface-Defect Dataset 2 (KSDD2)",
        "J. Bozic, D. Tabernik, D. Skocaj, Mixed supervision for surface-defect detection, Computers in Industry 2021",
        "https://www.vicos.si/resources/kolektorsdd2/", "CC BY-NC-SA 4.0",
        "ksdd2/{train,test}/<id>.png + <id>_GT.png", "defectlib.data.ImageMaskFolder(root/'train', images=None, "
        "masks=None, mask_suffix='_GT')", (), "Download from the official page."),
    DatasetInfo(
        "dagm", "DAGM 2007 weakly supervised texture defects (10 classes)",
        "M. Wieler, T. Hahn, DAGM 2007 competition dataset",
        "https://hci.iwr.uni-heidelberg.de/content/weakly-supervised-learning-industrial-optical-inspection",
        "Research use; see the official page.",
        "dagm/Class<k>/{Train,Test}/<id>.PNG + Label/<id>_label.PNG (defect-free images have no label)",
        "defectlib.data.ImageMaskFolder(root/'Class1'/'Train', images=None, masks='Label', "
        "mask_suffix='_label', allow_missing_masks=True)", (), "Download from the official page."),
]}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ChecksumError(RuntimeError):
    pass


def download(rf: RemoteFile, dest: Path, opener=urllib.request.urlopen, allow_unverified: bool = False) -> Path:
    """Download ``rf`` to ``dest/rf.filename`` and verify its SHA-256 (a mismatch deletes the file)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / rf.filename
    tmp = out.with_suffix(out.suffix + ".part")
    with opener(rf.url) as resp, open(tmp, "wb") as f:
        shutil.copyfileobj(resp, f)
    digest = sha256_file(tmp)
    if rf.sha256 is None:
        if not allow_unverified:
            tmp.unlink()
            raise ChecksumError(f"{rf.url}: no published SHA-256 to verify against (downloaded file had "
                                f"{digest}); rerun with --allow-unverified to accept it")
        print(f"WARNING: {rf.filename} not verified; its SHA-256 is {digest}")
    elif digest != rf.sha256:
        tmp.unlink()
        raise ChecksumError(f"{rf.url}: SHA-256 mismatch, expected {rf.sha256}, got {digest}; file deleted")
    tmp.replace(out)
    return out


def extract(archive: Path, dest: Path, strip_components: int = 0) -> None:
    """Extract a zip / tar archive into ``dest``, dropping ``strip_components`` leading folders and
    refusing members that would land outside ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def target(name: str) -> Path | None:
        parts = Path(name).parts[strip_components:]
        if not parts:
            return None
        t = (dest / Path(*parts)).resolve()
        if root not in t.parents and t != root:
            raise ChecksumError(f"{archive}: member {name!r} would extract outside {dest}")
        return t

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for m in z.infolist():
                t = target(m.filename)
                if t is None or m.is_dir():
                    continue
                t.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, open(t, "wb") as f:
                    shutil.copyfileobj(src, f)
    else:
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                t = target(m.name)
                if t is None or not m.isfile():
                    continue
                t.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(m) as src, open(t, "wb") as f:
                    shutil.copyfileobj(src, f)


def _neu_det_merge_validation(dest: Path) -> None:
    """The GitHub copy holds 30 images in Validation_*; put them back into the flat layout."""
    for src, dst in (("Validation_Images", "IMAGES"), ("Validation_Annotations", "ANNOTATIONS")):
        s = next(iter(dest.rglob(src)), None)
        d = next(iter(dest.rglob(dst)), None)
        if s is not None and d is not None:
            for f in s.iterdir():
                shutil.move(str(f), d / f.name)
            s.rmdir()


POSTPROCESS = {"neu-det": _neu_det_merge_validation}


def fetch(name: str, data_root, opener=urllib.request.urlopen, allow_unverified: bool = False,
          files: tuple[RemoteFile, ...] | None = None) -> Path:
    """Download, verify and unpack dataset ``name`` into ``<data_root>/<name>``; returns that folder."""
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)}")
    info = REGISTRY[name]
    files = info.files if files is None else files
    if not files:
        raise RuntimeError(f"{name} has no public direct download. {info.how_to_get} Official page: {info.url}")
    dest = Path(data_root) / name
    cache = Path(data_root) / ".downloads"
    for rf in files:
        archive = download(rf, cache, opener=opener, allow_unverified=allow_unverified)
        extract(archive, dest, rf.strip_components)
    if name in POSTPROCESS:
        POSTPROCESS[name](dest)
    return dest
