"""defectlib.data.gallery: notebook 00's first look at each dataset, on the generated stand-ins."""
from __future__ import annotations

import pytest

from defectlib.data import gallery
from defectlib.synth import locate


@pytest.mark.parametrize("name", ["neu-det", "mtd"])
def test_open_spread_and_caption_a_stand_in(name):
    ds = gallery.open_dataset(name, locate(name, None, standin=True)[0])
    picks = gallery.spread(ds, 4)
    assert len(picks) == 4 and len(set(picks)) == 4 and all(0 <= i < len(ds) for i in picks)
    if hasattr(ds, "defective"):          # defective samples come first
        flags = [bool(ds.defective[i]) for i in picks]
        assert flags[0] and flags == sorted(flags, reverse=True)
    img, target = ds[picks[0]]
    text = gallery.caption(name, ds, picks[0], target)
    assert text.startswith(str(ds.ids[picks[0]]).split("/")[-1][:18])
    assert ("box(es)" in text) if name == "neu-det" else (text.split(": ")[1] in ds.CLASSES)


def test_spread_without_defective_flags_and_unknown_names():
    assert gallery.spread(list(range(10)), 3) == [0, 3, 6]
    assert gallery.spread(list(range(2)), 3) == [0, 1]
    with pytest.raises(KeyError, match="known: neu-det"):
        gallery.open_dataset("kolektor", "/nowhere")
