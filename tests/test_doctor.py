"""``defectlib doctor``: what it measures for a probe, what it flags, and every notebook's probes at
smoke size (the CPU side of the check a GPU user runs first)."""
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from defectlib.course import doctor
from defectlib import profiles
from defectlib.engine import TrainConfig, supervised_loss
from defectlib.engine.selftest import toy_data


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 4))


def _probe(dataset, build=_mlp, batch_size=16, workers=0, steps=40):
    return doctor.Probe("99", "toy", build,
                        lambda: DataLoader(dataset, batch_size=batch_size, num_workers=workers),
                        supervised_loss(nn.functional.cross_entropy), TrainConfig(optimizer="sgd", lr=0.1), steps)


CFG = profiles.Profile(profile="smoke")


class _Clock:
    """The doctor's clock made virtual: time passes only when a test says so (``sleep``), so what
    is measured, and whether the loader keeps up, never depends on the machine's speed or load."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(doctor.measure, "time", c)
    return c


def test_check_measures_step_time_flops_memory_and_the_full_run(clock):
    probe = _probe(toy_data(256))
    loss = probe.loss_fn

    def slow_step(model, batch, device):      # a step of 20 ms: the in-memory loader (0 s) keeps up
        clock.sleep(0.02)
        return loss(model, batch, device)
    probe.loss_fn = slow_step
    c = doctor.check(probe, CFG, torch.device("cpu"), steps=3, warmup=1)
    assert not c.error, c.error
    assert c.batch_size == 16 and c.step_s == pytest.approx(0.02) and math.isclose(c.images_per_s, 16 / c.step_s)
    # one step of batch B: 3 x the forward pass, 2 FLOPs per multiply-add: 3 x 2B(2*32 + 32*4)
    assert c.gflop_per_step * 1e9 == pytest.approx(3 * 16 * 384)
    assert 0 <= c.peak_memory_gb < 1 and c.memory_kind == "RSS growth"   # a 200-parameter model
    assert c.planned_steps == 40 and math.isclose(c.estimate_h, 40 * c.step_s / 3600)
    assert c.keeps_up is True and c.workers == 0
    doctor.assume_tflops([c], 2.0)          # 40 steps x FLOPs per step at 2 TFLOP/s
    assert c.flops_estimate_h == pytest.approx(40 * 3 * 16 * 384 / 2e12 / 3600)
    assert "estimate at 2 TFLOP/s" in doctor.table([c])


def test_a_depthwise_convolution_step_costs_three_forward_passes():
    """PyTorch's FlopCounterMode charges a grouped convolution's backward as a dense one (65x here):
    the doctor's step estimate must not inherit that (PVT-v2 and EfficientNet are full of them)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.Conv2d(64, 1, 1))
    x, y = torch.rand(2, 64, 16, 16), torch.rand(2, 1, 16, 16)
    forward = 2 * 2 * 16 * 16 * (64 * 9 + 64)          # 2 FLOPs per multiply-add, batch 2
    loss = supervised_loss(nn.functional.mse_loss)
    assert doctor.step_flops(net, loss, (x, y), torch.device("cpu")) == 3 * forward


class _Slow(Dataset):
    def __init__(self, clock):
        self.clock = clock

    def __len__(self):
        return 64

    def __getitem__(self, i):
        self.clock.sleep(0.02)
        return torch.zeros(2), 0


def test_a_loader_slower_than_the_step_is_flagged(clock):
    probe = _probe(_Slow(clock), batch_size=8)
    loss = probe.loss_fn
    probe.loss_fn = lambda model, batch, device: clock.sleep(0.01) or loss(model, batch, device)  # 10 ms steps
    c = doctor.check(probe, CFG, torch.device("cpu"), steps=2, warmup=1, flops=False)
    assert not c.error, c.error
    assert c.loader_s == pytest.approx(8 * 0.02) and c.step_s == pytest.approx(0.01) and c.keeps_up is False
    assert "loading adds" in c.notes[0]
    assert "**no**" in doctor.table([c])


def test_out_of_memory_is_a_finding_and_the_next_check_still_runs():
    def too_big():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    bad = doctor.check(_probe(toy_data(64), build=too_big), CFG, torch.device("cpu"), steps=1, warmup=0)
    assert bad.error.startswith("out of memory while building the model")
    good = doctor.check(_probe(toy_data(64)), CFG, torch.device("cpu"), steps=1, warmup=0, flops=False)
    assert not good.error
    text = doctor.table([bad, good])
    assert "**failed**: out of memory" in text and text.count("\n") == 3


def test_the_recipe_precision_is_the_one_trained_with():
    """The doctor times a model with the TrainConfig its run trains with (one road from the profile:
    notebook 04's precision is its profile's, which its study runs take)."""
    cfg = profiles.get("04", "smoke").replace(precision="bf16")
    (p,) = doctor.probes("04", cfg)
    assert p.train.precision == "bf16" and p.train.optimizer == "adamw"
    c = doctor.check(p, cfg, torch.device("cpu"), steps=1, warmup=0, flops=False)
    assert not c.error and c.precision == "bf16"


@pytest.mark.parametrize("nb, names, steps", [
    ("01", ["DANet phase 5"], [5 * 2]),                               # 5 phases x max_steps 2
    ("02", ["U-Net-resnet34, 4 classes", "gate resnet34"], [2 + 2, 2]),  # BCE+Dice and Tversky stages
    ("03", ["OCINet (full)"], [2]),
    ("04", ["U-Net-R34"], [4 * 1 + 3 * 1]),                          # 4 sources x 1 step + 3 fine-tunings
])
def test_every_notebook_lists_its_models_and_the_steps_its_run_takes(nb, names, steps, monkeypatch):
    monkeypatch.delenv("DEFECTLIB_DATA", raising=False)      # the generated stand-ins, not real data
    ps = doctor.probes(nb, profiles.get(nb, "smoke"))
    assert [p.name for p in ps] == names and [p.planned_steps for p in ps] == steps
    assert all(p.notebook == nb for p in ps)


def test_doctor_command_on_cpu_runs_the_smoke_checks(tmp_path, capsys):
    out = tmp_path / "doctor.json"
    rc = doctor.main(["--only", "03", "--steps", "1", "--warmup", "0", "--no-flops", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "no GPU visible" in text and "| 03 | OCINet (full) | 2 |" in text
    (row,) = json.loads(out.read_text())
    assert row["profile"] == "smoke" and row["error"] == "" and row["step_s"] > 0


def test_the_doctor_says_whether_the_paper_runs_weights_are_here(tmp_path, monkeypatch):
    from defectlib.experiments import danet, ocinet
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DEFECTLIB_WEIGHTS", str(tmp_path / "weights"))
    d, o = profiles.get("01", "paper"), profiles.get("03", "paper")
    assert "without internet put that file at" in danet.weights_notes(d)[0]
    assert "missing, the run would stop" in ocinet.weights_notes(o)[0]
    coco = tmp_path / "torch" / "hub" / "checkpoints" / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    for f in (coco, tmp_path / "weights" / "pvt_v2_b2.pth"):
        f.parent.mkdir(parents=True)
        f.write_bytes(b"")
    assert str(coco) in danet.weights_notes(d)[0] and "pvt_v2_b2.pth" in ocinet.weights_notes(o)[0]
    assert danet.weights_notes(profiles.get("01", "cpu")) == [] == ocinet.weights_notes(profiles.get("03", "cpu"))


def test_cpu_memory_is_what_training_adds():
    """A 4096x4096 linear layer trained with SGD + momentum holds 3 x 64 MiB (weights, gradients,
    momentum): the RSS growth the doctor reports must see them."""
    data = TensorDataset(torch.randn(32, 4096), torch.randint(0, 4096, (32,)))
    big = doctor.Probe("99", "big", lambda: nn.Linear(4096, 4096),
                       lambda: DataLoader(data, batch_size=8), supervised_loss(nn.functional.cross_entropy),
                       TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9), 4)
    c = doctor.check(big, CFG, torch.device("cpu"), steps=1, warmup=1, flops=False)
    assert not c.error and c.peak_memory_gb >= 3 * 64 / 1024 * 0.9


def test_a_notebook_whose_data_cannot_be_built_is_reported(tmp_path):
    (tmp_path / "neu-det").mkdir()
    (tmp_path / "neu-det" / "junk.txt").write_text("not NEU-DET")       # "real" data that is not
    checks = doctor.run(["01"], profile="smoke", device="cpu", data_root=tmp_path, steps=1, warmup=0,
                        isolate=False, log=lambda *_: None)
    assert len(checks) == 1 and "while building the data" in checks[0].error


def test_an_isolated_check_may_start_loader_workers():
    """Each model is checked in its own process on CPU; the paper profiles' loaders start worker
    processes of their own, which a daemonic (pool) process may not."""
    count, fields = doctor._in_fresh_process(("03", "smoke", None, 0, 0, "cpu", 1, 0, False, {"num_workers": 2}))
    assert count == 1 and fields["error"] == "" and fields["workers"] == 2
