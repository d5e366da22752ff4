"""Registry + fetch (file:// URLs only: nothing downloads in tests) and the ``defectlib data`` CLI."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

from defectlib.course import data_cli as cli
from defectlib.data.registry import REGISTRY, ChecksumError, RemoteFile, fetch


def _archive(tmp_path):
    z = tmp_path / "src.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("repo-abc/MT_Free/Imgs/a.txt", "hello")
        f.writestr("repo-abc/README.md", "x")
    return z, hashlib.sha256(z.read_bytes()).hexdigest()


def test_registry_entries_are_complete():
    for name in ("neu-det", "neu-seg", "mtd", "severstal", "nrsd-mn", "ksdd2", "dagm"):
        d = REGISTRY[name]
        assert d.citation and d.url.startswith("http") and d.license and d.layout and d.loader
        for f in d.files:
            assert f.url.startswith("https://") and (f.sha256 is None or len(f.sha256) == 64)


def test_fetch_verifies_checksum_and_extracts(tmp_path):
    z, digest = _archive(tmp_path)
    dest = fetch("mtd", tmp_path / "data", files=(RemoteFile(z.as_uri(), "mtd.zip", digest, 1),))
    assert (dest / "MT_Free" / "Imgs" / "a.txt").read_text() == "hello"


def test_fetch_rejects_wrong_or_missing_checksum(tmp_path):
    z, _ = _archive(tmp_path)
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        fetch("mtd", tmp_path / "d1", files=(RemoteFile(z.as_uri(), "mtd.zip", "0" * 64),))
    assert not list((tmp_path / "d1" / ".downloads").iterdir())  # bad file deleted
    with pytest.raises(ChecksumError, match="allow-unverified"):
        fetch("mtd", tmp_path / "d2", files=(RemoteFile(z.as_uri(), "mtd.zip", None),))
    assert fetch("mtd", tmp_path / "d3", allow_unverified=True, files=(RemoteFile(z.as_uri(), "m.zip", None, 1),))


def test_fetch_uses_the_given_opener_and_refuses_path_traversal(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as f:
        f.writestr("../../escape.txt", "x")
    calls = []

    def opener(url):
        calls.append(url)
        return open(evil, "rb")
    digest = hashlib.sha256(evil.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError, match="outside"):
        fetch("mtd", tmp_path / "d", opener=opener, files=(RemoteFile("https://example.invalid/x.zip", "x.zip", digest),))
    assert calls == ["https://example.invalid/x.zip"] and not (tmp_path / "escape.txt").exists()


def test_fetch_without_public_download_explains(tmp_path):
    with pytest.raises(RuntimeError, match="kaggle competitions download"):
        fetch("severstal", tmp_path)


def test_cli_list_check_locate_make_standins(tmp_path, capsys, monkeypatch, standins):
    assert cli.main(["list"]) == 0
    assert "nrsd-mn" in capsys.readouterr().out
    assert cli.main(["check", str(standins["neu-det"])]) == 0
    out = capsys.readouterr().out
    assert "format: neu-det" in out and "Problems: 0" in out
    assert cli.main(["check", str(tmp_path / "nope")]) == 1
    assert cli.main(["make-standins", "--dest", str(tmp_path / "s"), "nrsd-mn"]) == 0
    assert (tmp_path / "s" / "nrsd-mn" / "2086" / "img").is_dir()
    monkeypatch.setenv("DEFECTLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DEFECTLIB_DATA", raising=False)
    monkeypatch.setattr("defectlib.synth.standins.standin_dir", lambda name: standins[name])
    capsys.readouterr()
    assert cli.main(["locate", "mtd", "--data-root", str(tmp_path)]) == 0
    assert "stand-in" in capsys.readouterr().out


def test_fetch_neu_det_restores_the_flat_layout(tmp_path, standins):
    z = tmp_path / "neu.zip"
    src = standins["neu-det"]
    with zipfile.ZipFile(z, "w") as f:
        for p in sorted((src / "IMAGES").iterdir()):
            folder = "Validation_Images" if p.stem.endswith("_1") else "IMAGES"
            f.write(p, f"repo-sha/{folder}/{p.name}")
        for p in sorted((src / "ANNOTATIONS").iterdir()):
            folder = "Validation_Annotations" if p.stem.endswith("_1") else "ANNOTATIONS"
            f.write(p, f"repo-sha/{folder}/{p.name}")
    digest = hashlib.sha256(z.read_bytes()).hexdigest()
    dest = fetch("neu-det", tmp_path / "data", files=(RemoteFile(z.as_uri(), "neu-det.zip", digest, 1),))
    from defectlib.data import NEUDET
    assert len(NEUDET(dest)) == 36 and not (dest / "Validation_Images").exists()
