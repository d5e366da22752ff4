"""DANet (paper 000): the five ablation phases build, train a step and evaluate; sizes pinned.

Oracles: torchvision's stock ``fasterrcnn_resnet50_fpn`` (phase 2 *is* that detector, so the
parameter counts must agree exactly), ``F.cross_entropy`` (focal loss with gamma = 0), a
hand-computed focal loss, and phase 2 == phase 3 at initialisation (zero offsets = plain conv).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from defectlib.data import NEUDET, collate_detection
from defectlib.engine import detection_loss
from defectlib.metrics.detection import COCOEvaluator
from defectlib.models.cbam import CBAM
from defectlib.models.danet import (PHASES, DANetBottleneck, FocalRoIHeads, SingleScaleRoIPool,
                                    build_danet, collect_offsets, count_parameters,
                                    softmax_focal_loss)
from defectlib.models.dcn import DeformConv2d
from defectlib.synth.writers import write_neu_det

# Full-size models (ResNet-50, FPN 256, box head 1024), 6 NEU-DET classes + background.
PARAMS = {2: 41_377_906, 5: 44_475_260}
TINY = dict(width=8, fpn_channels=32, representation_size=64, min_size=96, max_size=96,
            anchor_sizes=(16, 32, 64, 128, 256), box_batch_size_per_image=32,
            rpn_batch_size_per_image=64, rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
            rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50)


@pytest.fixture(scope="module")
def neu_batches(tmp_path_factory):
    root = write_neu_det(tmp_path_factory.mktemp("neu") / "neu-det", per_class=1, size=96)
    ds = NEUDET(root)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_detection)
    return list(loader)[:2]


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_phase_builds_trains_a_step_and_evaluates(phase, neu_batches):
    torch.manual_seed(phase)
    model = build_danet(phase, num_classes=6, **TINY)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    losses = detection_loss(model, neu_batches[0], torch.device("cpu"))
    assert set(losses) == {"loss", "loss_classifier", "loss_box_reg", "loss_objectness",
                           "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    opt.zero_grad()
    losses["loss"].backward()
    trained = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert any(n.startswith("backbone.body.layer") for n in trained)
    assert any(n.startswith("roi_heads.box_predictor") for n in trained)
    opt.step()
    model.eval()
    ev = COCOEvaluator(class_names=NEUDET.CLASSES)
    with torch.no_grad():
        images, targets = neu_batches[1]
        out = model(list(images))
    assert len(out) == len(images) and set(out[0]) == {"boxes", "labels", "scores"}
    ev.update(out, targets)
    res = ev.compute()
    assert 0.0 <= res.ap50 <= 1.0 or res.ap50 == -1.0


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_phase_trains_and_predicts_under_cpu_bf16_autocast(phase, neu_batches):
    """precision="auto" is bf16 autocast on a CPU with native bf16: every phase takes a step and
    predicts in it (phase 1's roi_pool has no bf16 CPU kernel: it failed before pooling in fp32)."""
    torch.manual_seed(phase)
    model = build_danet(phase, num_classes=6, **TINY)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = detection_loss(model, neu_batches[0], torch.device("cpu"))
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(list(neu_batches[1][0]))
    assert len(out) == len(neu_batches[1][0])


def test_single_scale_roi_pool_reduced_precision_is_fp32_pooling():
    """In bf16, SingleScaleRoIPool returns fp32 max-pooling of the same (bf16) features, in bf16:
    max-pooling picks values, so the two agree exactly."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 12, 12).to(torch.bfloat16)
    boxes = [torch.tensor([[0.0, 0.0, 40.0, 40.0]]), torch.tensor([[8.0, 4.0, 90.0, 60.0]])]
    pool = SingleScaleRoIPool("0", 3)
    got = pool({"0": x}, boxes, [(96, 96), (96, 96)])
    want = pool({"0": x.float()}, boxes, [(96, 96), (96, 96)])
    assert got.dtype is torch.bfloat16 and torch.equal(got.float(), want)


def test_phase_structure():
    """What each phase adds, and only that (Table 2)."""
    models = {p: build_danet(p, 6, **TINY) for p in PHASES}
    kinds = {p: {type(m) for m in models[p].modules()} for p in PHASES}
    assert isinstance(models[1].roi_heads.box_roi_pool, SingleScaleRoIPool)
    assert list(models[1].backbone(torch.zeros(1, 3, 64, 64))) == ["0"]      # one feature map
    for p in (2, 3, 4, 5):
        assert isinstance(models[p].roi_heads.box_roi_pool, MultiScaleRoIAlign)
        assert list(models[p].backbone(torch.zeros(1, 3, 64, 64))) == ["0", "1", "2", "3", "pool"]
    for p in (1, 2):
        assert DeformConv2d not in kinds[p] and CBAM not in kinds[p]
    assert DeformConv2d in kinds[3] and CBAM not in kinds[3]
    assert DeformConv2d in kinds[4] and CBAM in kinds[4] and DeformConv2d in kinds[5]
    assert type(models[4].roi_heads) is torchvision.models.detection.roi_heads.RoIHeads
    assert isinstance(models[5].roi_heads, FocalRoIHeads)
    # DCN in every bottleneck of c3-c5 (layer2-4) only; CBAM in every bottleneck
    body = models[4].backbone.body
    for i, layer in enumerate([body.layer1, body.layer2, body.layer3, body.layer4]):
        for block in layer:
            assert isinstance(block, DANetBottleneck)
            assert block.dcn == (i >= 1)
            assert block.cbam is not None
            if block.dcn:
                assert torch.count_nonzero(block.conv2_offset.weight) == 0
    assert sum(isinstance(m, DeformConv2d) for m in body.modules()) == 4 + 6 + 3
    assert sum(isinstance(m, CBAM) for m in body.modules()) == 3 + 4 + 6 + 3


def test_parameter_counts_pinned():
    counts = {p: count_parameters(build_danet(p, num_classes=6)) for p in PARAMS}
    stock = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=7)
    print(f"\nDANet parameters: phase 2 {counts[2]:,}  phase 5 {counts[5]:,}  "
          f"(torchvision fasterrcnn_resnet50_fpn, 7 classes: {count_parameters(stock):,})")
    assert counts[2] == count_parameters(stock)          # phase 2 is the stock detector
    assert counts == PARAMS


def test_phase3_at_init_equals_phase2():
    """Offsets start at zero, so the deformable backbone computes exactly the plain one."""
    torch.manual_seed(0)
    m2, m3 = build_danet(2, 6, **TINY), build_danet(3, 6, **TINY)
    report = m3.load_state_dict(m2.state_dict(), strict=False)
    assert report.unexpected_keys == []
    assert all("conv2_offset" in k for k in report.missing_keys) and report.missing_keys
    m2.eval(), m3.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f2, f3 = m2.backbone(x), m3.backbone(x)
    for k in f2:  # deform_conv2d and conv2d are different kernels: equal up to rounding
        assert (f2[k] - f3[k]).abs().max() <= 1e-5 * f2[k].abs().max(), k
    offsets = collect_offsets(m3, [torch.rand(1, 64, 64)])
    assert len(offsets) == 13 and all(torch.count_nonzero(o) == 0 for o in offsets.values())
    assert next(iter(offsets.values())).shape[1] == 18


def test_softmax_focal_loss():
    torch.manual_seed(0)
    logits, target = torch.randn(12, 7), torch.randint(0, 7, (12,))
    assert torch.allclose(softmax_focal_loss(logits, target, alpha=None, gamma=0.0),
                          F.cross_entropy(logits, target))
    # by hand: p_t = softmax prob of the target, alpha_t = .25 for defects, .75 for background
    lg, tg = torch.tensor([[2.0, 0.0, 1.0], [0.5, 0.5, 3.0]]), torch.tensor([0, 2])
    expected = 0.0
    for row, t in zip(lg.tolist(), tg.tolist()):
        p = math.exp(row[t]) / sum(math.exp(v) for v in row)
        expected += -(0.25 if t > 0 else 0.75) * (1 - p) ** 2 * math.log(p)
    assert softmax_focal_loss(lg, tg, alpha=0.25, gamma=2.0).item() == pytest.approx(expected / 2,
                                                                                    rel=1e-6)
    assert softmax_focal_loss(torch.zeros(0, 7), torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_weights_from_a_local_state_dict():
    """``weights=`` takes torchvision's COCO detector layout or a classification ResNet's
    (tested with locally built state dicts: nothing is downloaded)."""
    torch.manual_seed(0)
    coco = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    state = coco.state_dict()
    model = build_danet(5, 6, weights=state)
    rep = model.pretrained_report
    assert torch.equal(model.backbone.body.layer3[2].conv2.weight,     # deformable conv weight
                       state["backbone.body.layer3.2.conv2.weight"])
    assert torch.equal(model.backbone.fpn.layer_blocks[0][0].weight,
                       state["backbone.fpn.layer_blocks.0.0.weight"])
    assert torch.equal(model.rpn.head.conv[0][0].weight, state["rpn.head.conv.0.0.weight"])
    assert "roi_heads.box_predictor.cls_score.weight" in rep["wrong_shape"]     # 91 COCO classes
    assert any("conv2_offset" in k for k in rep["initialised"])
    assert any(".cbam." in k for k in rep["initialised"])
    assert isinstance(model.backbone.body.bn1, FrozenBatchNorm2d)
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad         # 3 trainable stages
    assert model.backbone.body.layer2[0].conv1.weight.requires_grad
    assert model.backbone.body.layer1[0].cbam.spatial.conv.weight.requires_grad  # new layers train

    resnet = torchvision.models.resnet50(weights=None).state_dict()
    model = build_danet(2, 6, weights=resnet, trainable_layers=5)
    assert torch.equal(model.backbone.body.conv1.weight, resnet["conv1.weight"])
    assert model.pretrained_report["loaded"] == sum(1 for k in resnet if not k.startswith("fc.")
                                                    and not k.endswith("num_batches_tracked"))
    with pytest.raises(ValueError, match="no tensor"):
        build_danet(2, 6, weights={"nothing.weight": torch.zeros(1)})


def test_bad_arguments():
    with pytest.raises(ValueError, match="phase"):
        build_danet(6, 6)
    with pytest.raises(ValueError, match="c2..c5"):
        build_danet(3, 6, dcn_stages=(1, 2), **TINY)


def test_paper_profile_loader_settings_feed_a_batch_on_cpu(tmp_path):
    """The paper profile's loader workers and pinned memory (for a GPU) also work on a CPU-only
    machine: 2 worker processes decode NEU-DET and the batches equal the single-process ones."""
    from defectlib import profiles
    from defectlib.runtime import pin_memory
    cfg = profiles.get("01", "paper")
    assert cfg.num_workers > 0 and cfg.pin_memory
    ds = NEUDET(write_neu_det(tmp_path / "neu-det", per_class=1, size=64))
    plain = list(torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_detection))
    workers = list(torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_detection, num_workers=2,
                                               pin_memory=pin_memory(cfg.pin_memory)))
    assert len(plain) == len(workers) == 2
    for (xa, ya), (xb, yb) in zip(plain, workers):
        assert all(torch.equal(a, b) for a, b in zip(xa, xb))
        assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(ya, yb))


def test_pretrained_weights_offline_say_where_the_file_goes(tmp_path, monkeypatch):
    """A GPU node without internet: the download error names the URL and the cache file to copy."""
    import urllib.error

    import torch.hub
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    from defectlib.models import danet
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    coco = FasterRCNN_ResNet50_FPN_Weights.COCO_V1
    file, url = danet.pretrained_file(coco)
    assert file == tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1] and url.startswith("https://")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    model = danet.build_danet(2, num_classes=6, width=8, fpn_channels=16, representation_size=32)
    with pytest.raises(RuntimeError, match=f"could not download .*{url.rsplit('/', 1)[1]}.*copy that file to {file}"):
        danet.load_pretrained(model, coco)
