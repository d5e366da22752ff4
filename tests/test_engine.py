"""defectlib.engine: schedules against closed-form formulas, the loop against a hand-written loop,
exact resumption, dry-run limits, early stopping, freezing, predict."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from defectlib.engine import (EarlyStopping, TrainConfig, fit, load_checkpoint, loss_evaluator, lr_curve,
                              predict, supervised_loss)
from defectlib.engine.history import History

CE = supervised_loss(nn.functional.cross_entropy)


def data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return TensorDataset(x, y)


def mlp(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def quiet(**kw):
    kw.setdefault("progress", False)
    return TrainConfig(**kw)


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------ schedules
def test_warmup_then_multistep_matches_formula():
    lr, f, T, ipe = 0.02, 0.001, 7, 5
    cfg = quiet(epochs=4, lr=lr, warmup_iters=T, warmup_factor=f, schedule="multistep", milestones=(1, 3),
                gamma=0.1)
    got = lr_curve(cfg, iters_per_epoch=ipe)
    want = []
    for t in range(4 * ipe):
        epoch = t // ipe
        warm = f + (1 - f) * t / T if t < T else 1.0
        want.append(lr * warm * 0.1 ** sum(epoch >= m for m in (1, 3)))
    assert got == pytest.approx(want, rel=1e-9)


def test_step_schedule_halves_every_step_size_epochs():
    cfg = quiet(epochs=5, lr=1.0, optimizer="adamw", schedule="step", step_size=2, gamma=0.5)
    assert lr_curve(cfg, iters_per_epoch=1) == pytest.approx([1, 1, 0.5, 0.5, 0.25])


def test_plateau_halves_after_patience_validations():
    # constant validation loss: epoch 1 sets the best, epochs 2 and 3 are a plateau 2 validations long
    # -> with patience 2 the lr is halved after epoch 3, and the count starts again
    cfg = quiet(epochs=6, optimizer="adam", lr=1e-3, schedule="plateau", plateau_factor=0.5, plateau_patience=2)
    h = fit(mlp(), DataLoader(data(8), batch_size=8), cfg, loss_fn=CE, device="cpu",
            evaluate=lambda m: {"val_loss": 1.0})
    assert [e["lr"] for e in h.epochs] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


def test_early_stopping_rule_of_paper_004():
    es = EarlyStopping(patience=5, min_delta=0.01, mode="min")
    # improvements under 1 % of the best so far do not count: stop at the 5th of them
    assert [es.step(v) for v in [1.0, 0.995, 0.996, 0.994, 0.993, 0.992]] == [False] * 5 + [True]
    # they accumulate against the best: 1.0 -> 0.995 -> 0.989 is a 1.1 % improvement, which resets
    es = EarlyStopping(patience=2, min_delta=0.01, mode="min")
    assert [es.step(v) for v in [1.0, 0.995, 0.989, 0.985]] == [False, False, False, False]
    es = EarlyStopping(patience=2, min_delta=0.01, mode="min")
    assert [es.step(v) for v in [1.0, 0.995, 0.98, 0.979, 0.978]] == [False, False, False, False, True]
    es = EarlyStopping(patience=1, min_delta=0.0, mode="max")
    assert [es.step(v) for v in [0.5, 0.6, 0.6]] == [False, False, True]


def test_fit_stops_early_and_records_why():
    vals = iter([1.0, 0.5, 0.499, 0.498, 0.497, 0.1, 0.1])
    cfg = quiet(epochs=7, lr=0.01, early_stopping=True, early_stop_patience=3)
    h = fit(mlp(), DataLoader(data(8), batch_size=8), cfg, loss_fn=CE, device="cpu",
            evaluate=lambda m: {"val_loss": next(vals)})
    assert len(h.epochs) == 5 and h.stopped == "early_stopping"
    assert h.best == {"epoch": 5, "name": "val_loss", "value": 0.497}


# ------------------------------------------------------------------------------------ the loop
def manual_train(model, loader, opt, epochs, clip=None):
    """Reference: the textbook loop, with clipping written out by hand."""
    for _ in range(epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if clip is not None:
                norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
                if norm > clip:
                    for p in model.parameters():
                        p.grad.mul_(clip / (norm + 1e-6))
            opt.step()


@pytest.mark.parametrize("name,clip", [("sgd", None), ("sgd", 0.05), ("adam", None), ("adamw", 0.05)])
def test_fit_equals_handwritten_loop(name, clip):
    ds = data()
    ref = mlp()
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
            "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3),
            "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=1e-3)}[name]
    manual_train(ref, DataLoader(ds, batch_size=8), make(ref.parameters()), epochs=2, clip=clip)
    model = mlp()
    cfg = quiet(epochs=2, optimizer=name, lr=0.1 if name == "sgd" else 0.01, weight_decay=1e-3, grad_clip=clip)
    h = fit(model, DataLoader(ds, batch_size=8), cfg, loss_fn=CE, device="cpu")
    for p, q in zip(model.parameters(), ref.parameters()):  # the hand loop sums the clip norm in Python floats
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert len(h.steps) == 12 and [e["step"] for e in h.epochs] == [6, 12]
    assert not same_state(model, mlp())  # it did train


def test_clipping_changes_the_result():
    ds = data()
    runs = []
    for clip in (None, 0.01):
        m = mlp()
        fit(m, DataLoader(ds, batch_size=8), quiet(epochs=1, lr=0.5, grad_clip=clip), loss_fn=CE, device="cpu")
        runs.append(m)
    assert not same_state(*runs)


def test_max_steps_stops_dry_run_and_evaluates_once():
    calls = []
    cfg = quiet(epochs=5, lr=0.01, max_steps=3)
    h = fit(mlp(), DataLoader(data(32), batch_size=4), cfg, loss_fn=CE, device="cpu",
            evaluate=lambda m: calls.append(1) or {"acc": 0.0})
    assert len(h.steps) == 3 and h.stopped == "max_steps" and len(calls) == 1
    assert h.epochs[-1]["partial"] and h.epochs[-1]["step"] == 3
    # max_steps spanning epochs
    model = mlp()
    h = fit(model, DataLoader(data(16), batch_size=4), quiet(epochs=5, max_steps=6), loss_fn=CE, device="cpu")
    assert len(h.epochs) == 2 and len(h.steps) == 6
    assert all(p.grad is None for p in model.parameters())  # a trained model keeps no gradients


def test_eval_every_and_last_epoch():
    seen = []
    cfg = quiet(epochs=5, eval_every=2)
    h = fit(mlp(), DataLoader(data(8), batch_size=8), cfg, loss_fn=CE, device="cpu",
            evaluate=lambda m: seen.append(m.training) or {"acc": 1.0})
    assert [("acc" in e) for e in h.epochs] == [False, True, False, True, True]
    assert seen == [False, False, False]  # evaluated in eval mode


def test_nonfinite_loss_names_the_step():
    def bad(model, batch, device):
        return {"loss": model(batch[0]).sum() * float("nan")}
    with pytest.raises(FloatingPointError, match="step 1"):
        fit(mlp(), DataLoader(data(8), batch_size=8), quiet(), loss_fn=bad, device="cpu")


def test_frozen_parameters_and_param_groups():
    model = mlp()
    first = model[0].weight.detach().clone()
    model[0].requires_grad_(False)
    fit(model, DataLoader(data(), batch_size=8), quiet(lr=0.1), loss_fn=CE, device="cpu")
    assert torch.equal(model[0].weight, first)
    # explicit groups with their own lr: a zero-lr group does not move
    model = mlp()
    last = model[3].weight.detach().clone()
    groups = [{"params": model[0].parameters()}, {"params": model[3].parameters(), "lr": 0.0}]
    fit(model, DataLoader(data(), batch_size=8), quiet(lr=0.1, momentum=0.0), loss_fn=CE, device="cpu",
        params=groups)
    assert torch.equal(model[3].weight, last) and not torch.equal(model[0].weight, first)


def test_fp32_precision_is_the_plain_loop_and_bf16_is_not():
    a, b, c = mlp(), mlp(), mlp()
    for m, prec in ((a, "fp32"), (b, "fp32"), (c, "bf16")):
        fit(m, DataLoader(data(), batch_size=8), quiet(precision=prec), loss_fn=CE, device="cpu")
    assert same_state(a, b) and not same_state(a, c)


# ------------------------------------------------------------------------------------ resume
def resume_setup(tmp_path, epochs, resume, name):
    ds, val = data(40, seed=1), data(16, seed=2)
    loader = DataLoader(ds, batch_size=8, shuffle=True)  # shuffling draws from torch's RNG
    cfg = quiet(epochs=epochs, lr=0.05, warmup_iters=4, schedule="multistep", milestones=(1,), gamma=0.5,
                checkpoint_dir=tmp_path / name, resume=resume, seed=3)
    return loader, cfg, loss_evaluator(DataLoader(val, batch_size=8), CE, "cpu")


def test_resume_continues_exactly(tmp_path):
    loader, cfg, ev = resume_setup(tmp_path, 2, False, "straight")
    straight = mlp(dropout=0.3)  # dropout: the resumed run must also restore the dropout masks
    h2 = fit(straight, loader, cfg, loss_fn=CE, device="cpu", evaluate=ev)

    loader, cfg, ev = resume_setup(tmp_path, 1, True, "split")
    first = mlp(dropout=0.3)
    fit(first, loader, cfg, loss_fn=CE, device="cpu", evaluate=ev)
    torch.manual_seed(12345)  # a fresh process: different global RNG, different initial weights
    torch.rand(100)
    resumed = mlp(seed=99, dropout=0.3)
    loader, cfg, ev = resume_setup(tmp_path, 2, True, "split")
    h = fit(resumed, loader, cfg, loss_fn=CE, device="cpu", evaluate=ev)

    assert same_state(resumed, straight)
    strip = lambda h: [{k: v for k, v in e.items() if k != "time_s"} for e in h.epochs]  # noqa: E731
    assert strip(h) == strip(h2) and h.steps == h2.steps
    assert h2.epochs[1]["val_loss"] != h2.epochs[0]["val_loss"]
    # and without the resume the second call would have started over
    loader, cfg, ev = resume_setup(tmp_path, 2, False, "split")
    again = mlp(seed=99, dropout=0.3)
    fit(again, loader, cfg, loss_fn=CE, device="cpu", evaluate=ev)
    assert not same_state(again, straight)


def test_resume_tells_a_batch_sampler_its_epoch(tmp_path):
    """A batch sampler with epochs of its own (class-balanced batches; NB02's crop-size schedule
    rides on it) continues after a resume where the uninterrupted run was, not at epoch 0."""
    from defectlib.data.sampling import ClassBalancedBatchSampler

    ds = data(40, seed=1)
    labels = ds.tensors[1].tolist()

    def run(epochs, name, resume):
        seen = []

        def loss_fn(net, batch, device):
            seen.append(batch[0][:, 0].tolist())  # which samples this step trained on
            return CE(net, batch, device)

        loader = DataLoader(ds, batch_sampler=ClassBalancedBatchSampler(labels, 8, num_batches=3, seed=5))
        fit(mlp(), loader, quiet(epochs=epochs, lr=0.05, checkpoint_dir=tmp_path / name, resume=resume, seed=3),
            loss_fn=loss_fn, device="cpu")
        return seen

    straight = run(3, "straight", False)
    run(1, "split", True)
    resumed = run(3, "split", True)
    assert resumed == straight[3:] and straight[3:6] != straight[:3]


def test_time_budget_stops_after_the_step_that_used_it_up():
    import time

    def slow(net, batch, device):
        time.sleep(0.02)  # each step takes at least 20 ms, so 0.1 s is gone after at most 6 steps
        return CE(net, batch, device)

    loader = DataLoader(data(64), batch_size=4)  # 16 steps per epoch
    h = fit(mlp(), loader, quiet(epochs=5, lr=0.05, time_budget_s=0.1), loss_fn=slow, device="cpu")
    assert h.stopped == "time_budget" and 1 <= h.steps[-1]["step"] <= 6 and h.epochs[-1]["partial"]
    h = fit(mlp(), loader, quiet(epochs=1, lr=0.05), loss_fn=slow, device="cpu")
    assert h.stopped is None and h.steps[-1]["step"] == 16
    with pytest.raises(ValueError, match="time_budget_s"):
        TrainConfig(time_budget_s=0)


def test_checkpoint_contents_load_safely(tmp_path):
    cfg = quiet(epochs=2, checkpoint_dir=tmp_path, optimizer="adam", lr=1e-3, schedule="plateau")
    fit(mlp(), DataLoader(data(), batch_size=8), cfg, loss_fn=CE, device="cpu",
        evaluate=loss_evaluator(DataLoader(data(8), batch_size=8), CE, "cpu"))
    state = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    assert {"model", "optimizer", "schedule", "scaler", "rng", "epoch", "step", "history", "config"} <= set(state)
    assert state["epoch"] == 2 and state["config"]["optimizer"] == "adam"
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["monitor"] == "val_loss"
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="broken.pt"):
        load_checkpoint(tmp_path / "broken.pt")


def test_resume_after_last_epoch_does_nothing(tmp_path):
    cfg = quiet(epochs=1, checkpoint_dir=tmp_path, resume=True)
    m = mlp()
    fit(m, DataLoader(data(), batch_size=8), cfg, loss_fn=CE, device="cpu")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    h = fit(m, DataLoader(data(), batch_size=8), cfg, loss_fn=CE, device="cpu")
    assert len(h.epochs) == 1 and all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# ------------------------------------------------------------------------------------ helpers
def test_predict_eval_mode_no_grad_and_restores_flags():
    model = mlp(dropout=0.9).train()
    ds = data(20)
    out = predict(model, DataLoader(ds, batch_size=8), "cpu")
    assert out.shape == (20, 3) and not out.requires_grad and model.training
    model.eval()
    # batches of 8, 8, 4 vs all 20 rows: other GEMM kernels, last-bit differences (default tolerance)
    torch.testing.assert_close(out, model(ds.tensors[0]).detach())
    assert predict(model, DataLoader(ds, batch_size=8), "cpu", max_batches=1).shape == (8, 3)


def test_config_checks_and_profile_dicts():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="milestones"):
        TrainConfig(schedule="multistep")
    cfg = TrainConfig.from_dict({"epochs": 3, "lr": 0.02, "max_steps": 2}, progress=False)
    assert (cfg.epochs, cfg.lr, cfg.max_steps, cfg.progress) == (3, 0.02, 2, False)
    with pytest.raises(KeyError, match="no field 'batch_size'.*it has"):    # not silently dropped
        TrainConfig.from_dict({"epochs": 3, "batch_size": 4})
    with pytest.raises(KeyError, match="no field 'warmup_iter'"):
        TrainConfig.from_dict({}, warmup_iter=10)


def test_history_plot():
    import matplotlib
    matplotlib.use("Agg")
    h = fit(mlp(), DataLoader(data(), batch_size=8), quiet(epochs=2, warmup_iters=3), loss_fn=CE, device="cpu",
            evaluate=lambda m: {"acc": 0.5})
    fig = h.plot()
    assert len(fig.axes) == 3 and h.metric_names() == ["acc"]


def test_epoch_randomness_does_not_depend_on_evaluation():
    """Every epoch is reseeded from (seed, epoch): an evaluator that draws random numbers (sampling
    a few images to plot, say) must not change what the next epoch shuffles or drops out."""
    runs = []
    for draw in (False, True):
        model = mlp(dropout=0.3)
        ev = (lambda m: {"x": float(torch.rand(1)) * 0}) if draw else (lambda m: {"x": 0.0})
        fit(model, DataLoader(data(), batch_size=8, shuffle=True), quiet(epochs=2, seed=5), loss_fn=CE,
            device="cpu", evaluate=ev)
        runs.append(model)
    assert same_state(*runs)


def test_a_learning_curve_inside_epochs_leaves_training_unchanged():
    """``curve`` runs every ``curve_every`` steps, mid-epoch too; it may draw random numbers and
    even look at the model in eval mode: the run trains exactly as without it (dropout on)."""
    seen_training = []

    def curve(m):
        seen_training.append(m.training)
        torch.rand(3)                                   # what a DataLoader iterator does to the RNG
        return {"acc": float((m(data().tensors[0]).argmax(1) == data().tensors[1]).float().mean())}
    runs = []
    for with_curve in (False, True):
        model = mlp(dropout=0.3)
        h = fit(model, DataLoader(data(), batch_size=8, shuffle=True),
                quiet(epochs=2, seed=3, curve_every=4 if with_curve else None), loss_fn=CE, device="cpu",
                curve=curve)
        runs.append((model, h))
    assert same_state(runs[0][0], runs[1][0])
    assert runs[0][1].curve == [] and seen_training == [False] * 3
    assert [(c["step"], c["epoch"]) for c in runs[1][1].curve] == [(4, 1), (8, 2), (12, 2)]   # 6 steps/epoch
    assert all(0 <= c["acc"] <= 1 for c in runs[1][1].curve)
    assert History.from_state_dict(runs[1][1].state_dict()).curve == runs[1][1].curve
    with pytest.raises(ValueError, match="curve_every"):
        quiet(curve_every=0)


def test_plateau_on_a_metric_to_maximise_and_monitor_errors():
    accs = iter([0.5, 0.6, 0.7, 0.8])  # improving accuracy: never halve
    cfg = quiet(epochs=4, optimizer="adam", lr=1e-3, schedule="plateau", plateau_patience=1)
    h = fit(mlp(), DataLoader(data(8), batch_size=8), cfg, loss_fn=CE, device="cpu",
            evaluate=lambda m: {"accuracy": next(accs)}, monitor="accuracy")
    assert h.column("lr") == [1e-3] * 4 and h.best["value"] == 0.8
    with pytest.raises(KeyError, match="monitor='val_loss'"):
        fit(mlp(), DataLoader(data(8), batch_size=8), cfg, loss_fn=CE, device="cpu",
            evaluate=lambda m: {"accuracy": 0.5})


def test_detection_style_loss_dict_is_summed_and_recorded():
    class Det(nn.Module):  # torchvision detectors return their loss terms in train mode
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, images, targets):
            assert isinstance(images, list) and isinstance(targets, list)
            return {"loss_classifier": self.w.sum() * 2, "loss_box_reg": self.w.sum() * 3}

    from defectlib.engine import detection_loss
    batches = [((torch.zeros(1, 4, 4),), ({"boxes": torch.zeros(0, 4)},))] * 2
    h = fit(Det(), DataLoader(batches, batch_size=None), quiet(lr=0.1, momentum=0.0), loss_fn=detection_loss,
            device="cpu")
    e = h.epochs[0]
    assert e["loss"] == pytest.approx(e["loss_classifier"] + e["loss_box_reg"])
    assert h.steps[0]["loss"] == pytest.approx(5.0) and h.steps[1]["loss"] == pytest.approx(5 * (1 - 0.5))


def test_resume_with_changed_settings_warns(tmp_path):
    fit(mlp(), DataLoader(data(), batch_size=8), quiet(epochs=1, checkpoint_dir=tmp_path), loss_fn=CE, device="cpu")
    with pytest.warns(UserWarning, match="'lr'"):
        fit(mlp(), DataLoader(data(), batch_size=8), quiet(epochs=2, lr=0.5, checkpoint_dir=tmp_path, resume=True),
            loss_fn=CE, device="cpu")


def test_same_seed_same_run_other_seed_other_run():
    runs = []
    for seed in (7, 7, 8):
        model = mlp(dropout=0.3)  # same initial weights every time: only the run's seed differs
        fit(model, DataLoader(data(), batch_size=8, shuffle=True), quiet(epochs=2, seed=seed), loss_fn=CE,
            device="cpu")
        runs.append(model)
    assert same_state(runs[0], runs[1]) and not same_state(runs[0], runs[2])


# ------------------------------------------------------------------------------------ the GPU path, checked on CPU
def test_resume_reads_the_checkpoint_onto_the_cpu_whatever_the_device(tmp_path):
    """On a GPU the checkpoint used to be loaded to the run's device: the random generators'
    states then landed there and torch.set_rng_state refused them ("RNG state must be a
    torch.ByteTensor"), so resume failed on every GPU run. A device that is not the CPU (meta
    here) stands in for CUDA: the run's device must not decide where the file is read to."""
    from defectlib.engine.loop import Trainer
    loader = DataLoader(data(), batch_size=8)
    fit(mlp(), loader, quiet(epochs=1, checkpoint_dir=tmp_path), loss_fn=CE, device="cpu")
    trainer = Trainer(mlp(seed=1), loader, quiet(epochs=2, checkpoint_dir=tmp_path, resume=True), CE, "cpu")
    trainer.device = torch.device("meta")
    trainer._maybe_resume()
    assert trainer.epoch == 1 and trainer.step == 6


def test_set_rng_state_takes_states_from_any_map_location(tmp_path):
    from defectlib.engine.checkpoint import rng_state, set_rng_state
    state = rng_state()
    want = torch.rand(3)
    # as a checkpoint read with map_location to a device gives them: other tensors, maybe other dtypes
    state["torch"] = state["torch"].to(torch.int64)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), want)


def test_set_deterministic_switches_both_ways():
    """A notebook seeds (deterministic on this CPU machine) before the engine trains on a GPU with
    fast kernels: the second call must undo the first (it used to leave deterministic cuDNN and
    no autotuning on for the whole GPU run)."""
    from defectlib.runtime import seed_everything, set_deterministic
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cuda.matmul.allow_tf32)
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        seed_everything(0, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.deterministic
    finally:
        set_deterministic(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = before[1], before[2]


def test_seed_everything_picks_fast_kernels_where_a_gpu_is_visible(monkeypatch):
    from defectlib.runtime import seed_everything, set_deterministic
    before = torch.are_deterministic_algorithms_enabled()
    try:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: None)
        seed_everything(0)
        assert not torch.are_deterministic_algorithms_enabled()
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        seed_everything(0)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(before)


class _Spy(torch.Tensor):
    """A tensor that records what is done to it: ``.to`` calls and reads of its values on the host."""
    log: list = []
    READS = {"__float__", "item", "tolist", "__bool__", "numpy", "__int__"}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name == "to":
            cls.log.append(("to", dict(kwargs or {})))
        elif name in cls.READS:
            cls.log.append(("read", name))
        return super().__torch_function__(func, types, args, kwargs)


def test_predict_copies_outputs_back_with_a_blocking_copy():
    """non_blocking=True from a GPU returns before the data has arrived; the outputs are then
    concatenated, so the last batch could be read half-copied."""
    class Net(nn.Module):
        def forward(self, x):
            return (x * 2).as_subclass(_Spy)
    _Spy.log = []
    out = predict(Net(), DataLoader(data(8), batch_size=4), device="cpu")
    moves = [kw for what, kw in _Spy.log if what == "to"]
    assert moves and not any(kw.get("non_blocking") for kw in moves)
    assert out.shape == (8, 5)


def test_loss_is_read_on_the_host_once_per_sync_every_steps():
    """Each read of a loss value waits for the GPU; the loop reads them once per ``sync_every``
    steps, with the same history, and still names the step of a non-finite loss."""
    def spy_loss(model, batch, device):
        return {"loss": CE(model, batch, device)["loss"].as_subclass(_Spy), "twice": torch.tensor(2.0).as_subclass(_Spy)}
    loader = DataLoader(data(), batch_size=4)           # 12 steps per epoch
    runs = {}
    for every in (1, 6):
        _Spy.log = []
        runs[every] = (fit(mlp(), loader, quiet(epochs=2, sync_every=every), loss_fn=spy_loss, device="cpu"),
                       sum(what == "read" for what, _ in _Spy.log))
    (h1, reads1), (h6, reads6) = runs[1], runs[6]
    assert h1.steps == h6.steps and h1.epochs[-1]["loss"] == h6.epochs[-1]["loss"]
    assert reads6 <= 24 // 6 + 2 < reads1
    assert h6.epochs[-1]["loss_twice"] == 2.0

    def nan_at_5(model, batch, device, calls=[]):
        calls.append(1)
        loss = CE(model, batch, device)["loss"]
        return {"loss": loss * float("nan") if len(calls) == 5 else loss}
    with pytest.raises(FloatingPointError, match="step 5 "):
        fit(mlp(), loader, quiet(sync_every=10), loss_fn=nan_at_5, device="cpu")


def test_save_last_false_keeps_only_best(tmp_path):
    """Notebook 04 reads back best.pt only; last.pt (weights + optimizer, 300-500 MB for its
    paper models) was written after every epoch of up to 1000."""
    fit(mlp(), DataLoader(data(), batch_size=8), quiet(epochs=2, checkpoint_dir=tmp_path, save_last=False),
        loss_fn=CE, device="cpu", evaluate=loss_evaluator(DataLoader(data(8), batch_size=8), CE, "cpu"))
    assert (tmp_path / "best.pt").is_file() and not (tmp_path / "last.pt").exists()
    with pytest.raises(ValueError, match="save_last"):
        TrainConfig(resume=True, save_last=False)
    with pytest.raises(ValueError, match="sync_every"):
        TrainConfig(sync_every=0)


def test_last_checkpoint_every_n_epochs_and_always_at_the_end(tmp_path, monkeypatch):
    import defectlib.engine.loop as L
    written = []
    real = L.save_checkpoint
    monkeypatch.setattr(L, "save_checkpoint", lambda path, state: written.append((path.name, state.get("epoch")))
                        or real(path, state))
    fit(mlp(), DataLoader(data(), batch_size=8), quiet(epochs=5, checkpoint_dir=tmp_path, checkpoint_every=2),
        loss_fn=CE, device="cpu")
    assert [e for name, e in written if name == "last.pt"] == [2, 4, 5]
    written.clear()
    fit(mlp(), DataLoader(data(), batch_size=8), quiet(epochs=5, checkpoint_dir=tmp_path / "b", checkpoint_every=3,
                                                      max_steps=6 * 2 - 1), loss_fn=CE, device="cpu")
    assert [e for name, e in written if name == "last.pt"] == [2]     # cut by max_steps in epoch 2: written
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=0)


def test_determinism_is_a_setting_of_the_run(monkeypatch):
    """Deterministic on CPU and fast on a GPU unless the run says otherwise (``defectlib run
    --deterministic`` / ``--fast`` set $DEFECTLIB_DETERMINISTIC for every notebook); a
    TrainConfig's own True / False wins over both."""
    from defectlib.runtime import deterministic_default, set_deterministic
    monkeypatch.delenv("DEFECTLIB_DETERMINISTIC", raising=False)
    assert deterministic_default("cpu") and not deterministic_default(torch.device("cuda", 1))
    monkeypatch.setenv("DEFECTLIB_DETERMINISTIC", "1")
    assert deterministic_default("cuda")
    monkeypatch.setenv("DEFECTLIB_DETERMINISTIC", "0")
    assert not deterministic_default("cpu")
    before = torch.are_deterministic_algorithms_enabled()
    try:
        x, y = torch.randn(16, 2), torch.randint(0, 2, (16,))
        loader = DataLoader(TensorDataset(x, y), batch_size=8)

        def train(**kw):
            fit(torch.nn.Linear(2, 2), loader, TrainConfig(progress=False, max_steps=1, **kw),
                loss_fn=supervised_loss(torch.nn.functional.cross_entropy), device="cpu")
            return torch.are_deterministic_algorithms_enabled()
        assert train() is False                     # the run asked for fast kernels, on a CPU
        assert train(deterministic=True) is True    # the recipe's own choice wins
        monkeypatch.delenv("DEFECTLIB_DETERMINISTIC")
        assert train() is True                      # CPU default
    finally:
        set_deterministic(before)


def test_the_runner_passes_determinism_to_every_notebook(monkeypatch):
    from defectlib.course.execute import child_env
    from defectlib.course.run import add_arguments
    monkeypatch.delenv("DEFECTLIB_DETERMINISTIC", raising=False)
    assert "DEFECTLIB_DETERMINISTIC" not in child_env(1)
    assert child_env(2, deterministic=True)["DEFECTLIB_DETERMINISTIC"] == "1"
    assert child_env(1, deterministic=False)["DEFECTLIB_DETERMINISTIC"] == "0"
    import argparse
    parse = add_arguments(argparse.ArgumentParser()).parse_args
    assert parse([]).deterministic is None and parse(["--deterministic"]).deterministic is True
    assert parse(["--fast"]).deterministic is False
    with pytest.raises(SystemExit):
        parse(["--fast", "--deterministic"])
