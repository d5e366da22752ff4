"""``defectlib.engine.predict``, the one inference loop every evaluation runs through: what the
caller keeps per batch (``output``), several models at once, autocast around the forward pass only,
``max_batches``, the model's device, and no draw from the global RNG beyond the loader's own."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from defectlib.engine import predict


def loader(n=10, batch_size=4):
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 5, generator=g), torch.arange(n)), batch_size=batch_size)


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.9), nn.Linear(8, 3))


def test_output_keeps_what_the_caller_chooses_gathered_field_by_field():
    model = net()
    seen = []

    def output(out, batch):
        seen.append(len(batch[0]))
        return {"p": out.softmax(1).half(), "labels": batch[1], "ids": [f"#{int(i)}" for i in batch[1]],
                "none": None}
    got = predict(model, loader(), "cpu", output=output)
    assert seen == [4, 4, 2]
    assert got["p"].dtype == torch.float16 and got["p"].shape == (10, 3)   # kept as returned, not fp32
    assert torch.equal(got["labels"], torch.arange(10)) and got["ids"][-1] == "#9" and got["none"] is None
    ref = model.eval()(loader().dataset.tensors[0]).softmax(1).half()
    torch.testing.assert_close(got["p"], ref)
    pair = predict(model, loader(), "cpu", output=lambda out, batch: (out.argmax(1), batch[1]))
    assert isinstance(pair, tuple) and [len(t) for t in pair] == [10, 10]


def test_several_models_in_a_module_dict_are_all_in_eval_and_restored():
    a, b = net(0).train(), net(1).eval()
    modes = []

    def forward(m, batch, device):
        modes.append((m["a"].training, m["b"].training))
        x = batch[0].to(device)
        return m["a"](x), m["b"](x)
    out_a, out_b = predict(nn.ModuleDict({"a": a, "b": b}), loader(), "cpu", forward=forward)
    assert modes == [(False, False)] * 3 and a.training and not b.training
    a.eval()
    # the same batches as the loader (4, 4, 2): one pass over all 10 rows would pick other matrix
    # kernels on some CPUs (AMX, AVX-512) and move the last bits
    batches = [x for x, _ in loader()]
    assert torch.equal(out_a, torch.cat([a(x) for x in batches]))
    assert torch.equal(out_b, torch.cat([b(x) for x in batches]))


def test_autocast_covers_the_forward_pass_and_not_output():
    where = {}

    def forward(m, batch, device):
        where["forward"] = torch.is_autocast_enabled("cpu")
        return m(batch[0])

    def output(out, batch):
        where["output"] = torch.is_autocast_enabled("cpu")
        return out
    out = predict(net(), loader(), "cpu", forward=forward, output=output, precision="bf16")
    assert where == {"forward": True, "output": False} and out.dtype == torch.bfloat16
    assert predict(net(), loader(), "cpu", precision="bf16").dtype == torch.float32   # default: back in fp32


def test_max_batches_and_bad_input():
    assert predict(net(), loader(), "cpu", max_batches=2).shape == (8, 3)
    assert predict(net(), loader(), "cpu", max_batches=0) == []
    with pytest.raises(ValueError, match="max_batches"):
        predict(net(), loader(), "cpu", max_batches=-1)
    with pytest.raises(ValueError, match="weights are on meta"):
        predict(net().to("meta"), loader(), "cpu")


@pytest.mark.parametrize("progress", [False, True])
def test_no_global_rng_draw_beyond_the_loaders_own(progress):
    """A DataLoader draws a seed from the global RNG for every iterator it opens: with or without a
    bar, an evaluation opens one (a tqdm.auto bar would open a second when built), so it leaves the
    RNG (and any training after it) as a plain loop over the loader does."""
    model, batches = net(), loader()
    torch.manual_seed(3)
    for _ in batches:
        pass
    expected = torch.rand(1)
    torch.manual_seed(3)
    predict(model, batches, "cpu", progress=progress)
    assert torch.equal(torch.rand(1), expected)
