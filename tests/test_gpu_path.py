"""The paper runs on GPU nodes and under torchrun, checked on a CPU (CUDA faked where the path needs
it; issue 27): a global batch that does not split stops before any data is built and names the
setting to change; a checkpoint from a node with more GPUs resumes on one; emulated bf16 cards get
fp16; ``cuda:K`` becomes the current device."""
from __future__ import annotations

import pytest
import torch

from defectlib import profiles
from defectlib.engine import checkpoint
from defectlib.engine.distributed import DistInfo
from defectlib.engine.precision import resolve_precision
from defectlib.experiments import command
from defectlib.runtime import resolve_device


# --- a global batch that does not split over the processes ------------------------------------------
def test_the_message_names_the_setting_and_the_multiples_that_split():
    assert command.per_rank_batch(4, 2) == 2 and command.per_rank_batch(5, 1) == 5
    with pytest.raises(ValueError, match=r"seg_batch_size 5 \(the global batch\) does not split over 2 processes: "
                                         r"--set seg_batch_size=4 or 6"):
        command.per_rank_batch(5, 2, "seg_batch_size")
    with pytest.raises(ValueError, match=r"--set batch_size=8 \(a multiple of 8"):   # DANet's 4 on 8 GPUs
        command.per_rank_batch(4, 8)
    with pytest.raises(ValueError, match=r"study.batch_size = 16 or 24 in the profile"):  # no --set for nested
        command.per_rank_batch(20, 8, "study.batch_size")


@pytest.mark.parametrize("world_size", [2, 4, 8])
def test_notebook_02_stops_before_building_its_data(monkeypatch, world_size):
    """The paper's seg_batch_size=5 under torchrun: a clear error before the tasks are built (it
    used to come after minutes of data preparation, naming a key notebook 02 does not have)."""
    from defectlib.experiments.severstal import main as severstal_main

    def join(notebook, profile, device, dry_run, changes, out=None):
        return profiles.get(notebook, profile, dry_run=dry_run, **changes), torch.device("cpu"), \
            DistInfo(0, world_size, 0)
    monkeypatch.setattr(command, "join", join)
    monkeypatch.setattr(severstal_main, "build_tasks", lambda *a, **k: pytest.fail("data built first"))
    with pytest.raises(ValueError, match=rf"seg_batch_size 5 .* over {world_size} processes: --set seg_batch_size="):
        severstal_main.run("paper", dry_run=True)


# --- resume where fewer GPUs are visible than when the checkpoint was written -----------------------
class _FakeCuda:
    """``torch.cuda`` as a machine with ``n`` GPUs shows it, for the RNG calls of checkpoints."""

    def __init__(self, monkeypatch, n: int):
        self.set: dict[int, torch.Tensor] = {}
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device=0: self.set.__setitem__(int(device), s))

        def set_all(states):  # what torch does: one state per visible device, more is an IndexError
            if len(states) > n:
                raise IndexError("list index out of range")
            for k, s in enumerate(states):
                self.set[k] = s
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)


def test_a_checkpoint_of_four_gpus_resumes_on_one(monkeypatch):
    state = checkpoint.rng_state()
    state["cuda"] = [torch.full((16,), k, dtype=torch.uint8) for k in range(4)]   # rank 0 of a 4-GPU run
    fake = _FakeCuda(monkeypatch, n=1)
    checkpoint.set_rng_state(state)
    assert list(fake.set) == [0] and torch.equal(fake.set[0], state["cuda"][0])   # GPU 0 gets GPU 0's state
    fake = _FakeCuda(monkeypatch, n=8)                                           # and on a bigger node
    checkpoint.set_rng_state(state)
    assert sorted(fake.set) == [0, 1, 2, 3]


# --- precision="auto" on a card that only emulates bf16 ---------------------------------------------
@pytest.mark.parametrize("capability, want", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                              ((8, 9), "bf16"), ((9, 0), "bf16")])
def test_auto_is_bf16_only_where_the_gpu_computes_in_it(monkeypatch, capability, want):
    """V100 (7.0) and T4 (7.5) report bf16 as supported (emulated, slower than fp16): fp16 + a
    GradScaler there; Ampere (8.0) and later compute in bf16."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    p = resolve_precision("auto", "cuda")
    assert p.name == want and p.scale_loss == (want == "fp16")


# --- --device cuda:K ----------------------------------------------------------------------------------
def test_cuda_k_becomes_the_current_device(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda k: calls.append(k))
    assert resolve_device("cuda:1") == torch.device("cuda:1") and calls == [1]
    assert resolve_device(torch.device("cuda", 2)) == torch.device("cuda:2") and calls == [1, 2]
    assert resolve_device("cuda").type == "cuda" and calls == [1, 2]     # no index: the current one
    assert resolve_device("cpu") == torch.device("cpu") and calls == [1, 2]


# --- SyncBN under torchrun ------------------------------------------------------------------------
def test_paper_profiles_normalise_over_the_global_batch():
    """Every model of every paper profile trains with sync_bn (BatchNorm over the global batch when a
    run is split over GPUs; nothing changes on one GPU or on a CPU), the cpu and smoke profiles
    without, and a command can turn it on (``--set sync_bn=true`` used to be refused)."""
    from defectlib.experiments.registry import train_config
    from defectlib.experiments.synthetic import study_config
    for name, want in (("paper", True), ("cpu", False), ("smoke", False)):
        for nb, models in (("01", (None,)), ("02", ("unet", "gate")), ("03", (None,))):
            for model in models:
                assert train_config(profiles.get(nb, name), model).sync_bn is want, (nb, model, name)
        assert train_config(study_config(profiles.get("04", name))).sync_bn is want
    assert command.parse_changes("03", "cpu", ["sync_bn=true"]) == {"sync_bn": True}


# --- the doctor measures the model the paper run trains ---------------------------------------------
def test_the_doctor_builds_danet_as_the_paper_run_trains_it():
    """The paper profile starts from COCO weights: frozen BatchNorm and 3 trainable stages. The
    doctor builds that shape without the weights (it used to measure plain BatchNorm and 5
    trainable stages: another model's memory and step time); the from-scratch profiles keep theirs."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    from defectlib.experiments import danet
    for name, frozen in (("paper", True), ("smoke", False)):
        cfg = profiles.get("01", name).replace(phases=(2,), width=8, fpn_channels=32, representation_size=64,
                                                min_size=128, max_size=128, max_train_images=8, max_test_images=4,
                                                num_workers=0)   # the loader is not what is tested
        (probe,) = danet.doctor_probes(cfg, None, 0)
        body = probe.build().backbone.body
        norms = {type(m) for m in body.modules() if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d))}
        assert norms == ({FrozenBatchNorm2d} if frozen else {torch.nn.BatchNorm2d}), name
        stem_trains = any(p.requires_grad for n, p in body.named_parameters() if n.startswith(("conv1", "layer1")))
        assert stem_trains is not frozen, name


# --- DANet under bf16 autocast decodes its boxes in fp32 --------------------------------------------
def test_a_bf16_detector_step_decodes_boxes_in_fp32(monkeypatch):
    """precision="auto" on an Ampere GPU (or a CPU with native bf16) trains DANet under bf16
    autocast; torchvision's box coder then decoded in bf16 (801.3 -> 800). Every decode of a bf16
    training step, RPN and RoI head, is now fp32 and exact."""
    from torchvision.models.detection._utils import BoxCoder

    from defectlib.models.danet import build_danet
    decoded = []
    original = BoxCoder.decode_single

    def spy(self, rel_codes, boxes):
        out = original(self, rel_codes, boxes)
        decoded.append(out.dtype)
        return out
    monkeypatch.setattr(BoxCoder, "decode_single", spy)
    torch.manual_seed(0)
    model = build_danet(5, num_classes=2, width=8, fpn_channels=16, representation_size=32, min_size=64,
                        max_size=64, anchor_sizes=(8, 16, 32, 64, 128), rpn_pre_nms_top_n_train=50,
                        rpn_post_nms_top_n_train=20, box_batch_size_per_image=16).train()
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 40.0, 50.0]]), "labels": torch.tensor([1])}]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert decoded and all(d == torch.float32 for d in decoded), decoded
    assert all(torch.isfinite(v) for v in losses.values())
    # and exactly: zero offsets give the anchor back, to fp32 precision, not on bf16's 4-8 px grid
    anchors = [torch.tensor([[801.3, 3.0, 1333.0, 10.5]])]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        box = model.rpn.box_coder.decode(torch.zeros(1, 4, dtype=torch.bfloat16), anchors)
    torch.testing.assert_close(box.reshape(4), anchors[0][0], rtol=0, atol=1e-3)  # fp32 rounding only


# --- notebook 04 under torchrun: every rank keeps the same weights and the same grid choice ---------
def _broadcast_worker(rank, world, port, queue):
    import os

    import torch.distributed as dist

    from defectlib.engine import distributed as D
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)                          # each rank's copy differs, as after rank 0 alone restored best.pt
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    model[1].running_mean += rank
    D.broadcast_weights(model, D.info())
    queue.put((rank, {k: v.clone() for k, v in model.state_dict().items()}))
    dist.destroy_process_group()


def _two_ranks(target, timeout: float) -> list:
    """``target(rank, 2, port, queue)`` in two spawned processes joined by gloo on a free port:
    what each put on the queue (killed if still alive a minute after)."""
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        return [queue.get(timeout=timeout) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()


def test_broadcast_weights_gives_every_rank_rank_0s_weights_and_buffers():
    got = dict(_two_ranks(_broadcast_worker, timeout=120))
    torch.manual_seed(0)
    rank0 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).state_dict()
    for k in rank0:
        assert torch.equal(got[0][k], got[1][k]) and torch.equal(got[1][k], rank0[k]), k


def test_notebook_04s_runs_restore_rank_0s_best_weights_on_every_rank(monkeypatch):
    """Under torchrun only rank 0 writes best.pt (in its own temporary folder): the other ranks kept
    their last weights and could choose another (lr, weight decay) in the grid, then fine-tune with
    other settings; the copies drifted apart silently. Rank 1 of 2, simulated: it now takes rank 0's
    weights and rank 0's grid choice."""
    import types

    from defectlib.experiments.synthetic import recipe
    marker = {}

    def broadcast_weights(model, di):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.125)                       # "rank 0's weights"
        marker["weights"] = True
        return model

    def broadcast(obj, di):
        marker["choice"] = True
        return (0.5, 1.0)                            # rank 0's threshold and F1
    fake = types.SimpleNamespace(info=lambda: types.SimpleNamespace(is_main=False, enabled=True),
                                 broadcast_weights=broadcast_weights, broadcast=broadcast)
    monkeypatch.setattr(recipe, "D", fake)
    sc = recipe.StudyProfile(crop=32, batch_size=2, steps_per_epoch=1, max_epochs=1, val_crops=2, lr_grid=(1e-3,),
                             wd_grid=(1e-4,), eval_patch=(32, 32), progress=False)
    pairs = [(torch.rand(1, 32, 32), (torch.rand(1, 32, 32) > 0.9).float()) for _ in range(3)]
    model, thr, info = recipe.pretrain("unet", {"train": pairs, "val": pairs}, sc, exposure=False)
    assert marker == {"weights": True, "choice": True} and thr == 0.5
    assert all(torch.all(p == 0.125) for p in model.parameters())


# --- under torchrun rank 0 alone evaluates, the others wait ----------------------------------------
def _rank(monkeypatch, rank: int, world: int = 2):
    """``command.join`` as rank ``rank`` of ``world`` sees it (no process group: the steps that
    would need one are replaced by the test)."""
    from defectlib.engine import distributed as D

    def join(notebook, profile, device, dry_run, changes, out=None):
        return profiles.get(notebook, profile, dry_run=dry_run, **changes), torch.device("cpu"), \
            DistInfo(rank, world, rank)
    monkeypatch.setattr(command, "join", join)
    monkeypatch.setattr(D, "barrier", lambda di: None)
    monkeypatch.setattr(D, "broadcast", lambda obj, di, src=0: "resnet34" if obj is None else obj)


@pytest.mark.parametrize("rank", [0, 1])
def test_ocinet_evaluates_on_rank_0_only(monkeypatch, rank):
    from defectlib.experiments.ocinet import main as ocinet_main
    _rank(monkeypatch, rank)
    seen = []

    def train_and_evaluate(key, data, cfg, dev, seed=0, weights=None, evaluate_sets=True):
        seen.append(evaluate_sets)
        results = {name: {"IoU": 50.0, "PA": 1.0, "wFm": 1.0, "Dice": 1.0, "pixel_accuracy": 1.0, "n_images": 1}
                   for name in data.tests} if evaluate_sets else {}
        return {"model": None, "history": None, "train_s": 0.0, "results": results}
    monkeypatch.setattr(ocinet_main, "train_and_evaluate", train_and_evaluate)
    monkeypatch.setattr(ocinet_main, "record_runs", lambda *a: None)
    monkeypatch.setattr(ocinet_main, "record_curves", lambda *a: None)
    monkeypatch.setattr(ocinet_main, "record_summary", lambda *a: seen.append("recorded"))
    out = ocinet_main.run("smoke")
    assert seen == ([True, "recorded"] if rank == 0 else [False]) and (out is None) == (rank == 1)


def test_severstal_evaluates_on_rank_0_only_and_shares_its_choice(monkeypatch):
    from defectlib.experiments.severstal import main as severstal_main
    _rank(monkeypatch, 1)
    task = type("T", (), {"dataset": "toy", "num_classes": 1})()
    trained = []
    for name in ("parameter_counts", "demo_batches"):
        monkeypatch.setattr(severstal_main, name, lambda *a, **k: None)
    monkeypatch.setattr(severstal_main, "build_tasks", lambda *a, **k: (task, task))
    monkeypatch.setattr(severstal_main, "train_unet", lambda t, enc, *a, **k: (trained.append(enc) or "unet", []))
    monkeypatch.setattr(severstal_main, "train_gate", lambda *a, **k: (trained.append(k["encoder"]) or "gate", None))
    for name in ("evaluate_unet", "unet_on_clean", "evaluate_gate", "record_segmentation", "record_gate",
                 "pipeline_predictions", "record_pipeline", "record_scores"):
        monkeypatch.setattr(severstal_main, name, lambda *a, name=name, **k: pytest.fail(f"rank 1 ran {name}"))
    assert severstal_main.run("smoke") is None
    assert trained == ["resnet34", "resnet34"]     # the U-Net, then the gate on rank 0's chosen encoder


# --- learning-curve points cost what they use ------------------------------------------------------
def test_ocinet_curve_points_compute_the_iou_alone_and_the_same_iou(monkeypatch):
    """A point of notebook 03's learning curve used the whole protocol, wFm included (the costly part),
    and kept only the IoU: now the IoU alone, by the same steps, to the last bit."""
    import numpy as np

    from defectlib.experiments.ocinet import recipe
    from defectlib.metrics import wfm
    rng = np.random.default_rng(0)
    probs = [rng.random((24, 24)).astype(np.float32) for _ in range(5)] + [rng.random((16, 20)).astype(np.float32)]
    masks = [(rng.random(p.shape) > 0.8).astype(np.float32) for p in probs]
    full = recipe.score_maps(probs, masks)["IoU"]
    monkeypatch.setattr(wfm, "weighted_fmeasure", lambda *a, **k: pytest.fail("wFm computed for a curve point"))
    assert np.array_equal(recipe.score_maps(probs, masks, iou_only=True)["IoU"], full)


# --- notebook 04 under torchrun: rank 0 alone evaluates ---------------------------------------------
def _synthetic_rank(rank, world, port, queue):
    """Rank ``rank`` of a 2-process gloo run of notebook 04's command on toy tiles, counting the
    whole-image predictions (the evaluations: source-validation F1, threshold, test P / R / F1)."""
    import os

    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), CUDA_VISIBLE_DEVICES="")
    if os.path.exists("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    from defectlib.experiments.synthetic import main as synthetic_main
    from defectlib.experiments.synthetic import recipe
    predicted = []
    real = recipe.predict_images
    recipe.predict_images = lambda model, pairs, *a, **k: predicted.append(len(pairs)) or real(model, pairs, *a, **k)
    g = torch.Generator().manual_seed(0)

    def split():
        def pair():
            mask = torch.zeros(1, 64, 64)
            mask[0, 20:30, 16:40] = 1
            return torch.rand(1, 64, 64, generator=g), mask
        return {"train": [pair() for _ in range(4)], "val": [pair() for _ in range(2)], "test": [pair() for _ in range(2)]}
    target = {**split(), "real": False, "ids": {}, "root": ""}
    sources = (target, split(), split())
    synthetic_main.load_sources = lambda *a, **k: sources
    synthetic_main.describe_target = lambda *a, **k: "toy tiles"
    try:
        out = synthetic_main.run("smoke", progress=False, arms=("real", "planar_ft"))
        queue.put((rank, len(predicted), sorted(k["name"] for k in out["metrics"]) if out else None))
    except BaseException as e:   # noqa: BLE001  (reported to the test, not lost in the child)
        queue.put((rank, repr(e), None))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_notebook_04_evaluates_on_rank_0_only():
    """Under torchrun every rank of notebook 04 predicted the source validation tiles, chose its
    threshold and scored the test tiles, each computing what rank 0 computed. Two gloo processes:
    rank 0 evaluates (the same 5 predictions as one process), rank 1 none; rank 0 records the rows."""
    got = {rank: (n, names) for rank, n, names in _two_ranks(_synthetic_rank, timeout=300)}
    assert got[1] == (0, None), got                  # rank 1: no prediction, no results
    assert got[0][0] == 5, got                       # real: val F1 + test; planar_ft: val F1 + threshold + test
    assert {f"unet/{arm}/{k}" for arm in ("real", "planar_ft") for k in ("P", "R", "F1")} <= set(got[0][1])
