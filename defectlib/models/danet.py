"""DANet: Faster R-CNN + ResNet-50-FPN + deformable convolution + CBAM + focal loss (paper 000).

The five ablation phases of the paper's Tables 2-3, built from torchvision's detection parts
(RoIAlign in phase 2 is our placement: Table 2 does not name it, and the abstract adds it after
CBAM, "After that we incorporated ROI Align, replacing ROI Pooling"):

====== ===================================================== ====================================
phase  model                                                 what this module adds
====== ===================================================== ====================================
1      Faster R-CNN, one feature map (ResNet-50 C4), RoIPool  :class:`SingleScaleRoIPool` adapter
2      + ResNet-50-FPN (C2..C5, 256 ch) and RoIAlign          nothing: torchvision's FPN/RoIAlign
3      + deformable 3x3 conv in the bottlenecks of c3-c5      :class:`DANetBottleneck` (Eq. 2)
4      + CBAM on every bottleneck's residual branch           :class:`DANetBottleneck` (Eqs. 3-6)
5      + focal loss for the box classifier (DANet)            :class:`FocalRoIHeads` (Eq. 10)
====== ===================================================== ====================================

The RPN, anchors, proposal sampling, box coder, FPN (``BackboneWithFPN``), ``MultiScaleRoIAlign``,
``RoIPool``, box head and post-processing are torchvision's own. The deformable convolution is
:mod:`defectlib.models.dcn`, CBAM is :mod:`defectlib.models.cbam`.

Choices the paper leaves open, stated (see docs/papers.md#danet):

- RoIAlign enters with the FPN in phase 2, because torchvision's multi-scale detector pools with
  ``MultiScaleRoIAlign``; no table of the paper says which phase first uses it.

- Phase 1 reads RoIs from the C4 map (stride 16, 1024 channels) of ResNet-50, as in the original
  Faster R-CNN with ResNets; the paper's "base" has no FPN, so one feature map.
- DCN: DCNv1 (the paper cites Dai et al. 2017) in every bottleneck of c3-c5 (mmdetection's
  practice), offsets from a zero-initialised 3x3 conv so training starts as a plain ResNet.
  ``dcn_modulated=True`` gives DCNv2 (mask = sigmoid of 9 more zero-initialised channels).
- Focal loss: the box classifier is torchvision's softmax over 1 + num_classes logits, so Eq. 10 is
  used in its multi-class form ``-alpha_t (1 - p_t)^gamma log p_t`` with ``p_t`` the softmax
  probability of the true class, ``alpha_t = alpha`` for defect RoIs and ``1 - alpha`` for
  background RoIs (RetinaNet's convention, alpha = 0.25, gamma = 2), averaged over sampled RoIs as
  torchvision averages its cross-entropy. Inference is unchanged.
- Grey ``[1, H, W]`` images work as they are: torchvision's normalisation (ImageNet mean/std of
  3 channels) broadcasts them to 3 identical-content channels, so a COCO/ImageNet conv1 applies.
- ``width`` shrinks every ResNet stage (64 = ResNet-50; the cpu profile uses less) and
  ``fpn_channels`` / ``representation_size`` the FPN and box head; the layer layout, DCN and CBAM
  positions stay those of ResNet-50, so the paper profile is exact and pretrained weights load.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.models.resnet import Bottleneck
from torchvision.ops import MultiScaleRoIAlign, roi_pool
from torchvision.ops.misc import FrozenBatchNorm2d

from .box_coder import FP32BoxCoder
from .cbam import CBAM
from .dcn import DeformConv2d
from ..complexity import count_parameters  # re-exported: the pinned phase counts

__all__ = ["PHASES", "DANetBottleneck", "ResNet50Body", "SingleScaleRoIPool", "FocalRoIHeads",
           "softmax_focal_loss", "build_danet", "load_pretrained", "pretrained_file", "collect_offsets",
           "count_parameters"]

PHASES = {
    1: "Faster R-CNN (single scale, RoIPool)",
    2: "+ ResNet-50-FPN, RoIAlign",
    3: "+ DCN",
    4: "+ CBAM",
    5: "+ focal loss (DANet)",
}


# --- backbone --------------------------------------------------------------------------------------
class DANetBottleneck(Bottleneck):
    """torchvision's ResNet bottleneck (1x1 -> 3x3 -> 1x1 + shortcut) with two optional additions.

    - ``dcn``: the 3x3 conv becomes a :class:`DeformConv2d` whose offsets (and DCNv2 mask) come
      from ``conv2_offset``, a 3x3 conv initialised to zero (Eq. 2).
    - ``cbam``: CBAM on the residual branch, after the last BN, before the addition (Fig. 8).

    Parameter names stay torchvision's (``conv2.weight`` has the same shape), so ImageNet or COCO
    ResNet-50 weights load; only ``conv2_offset.*`` and ``cbam.*`` are new.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 dcn: bool = False, dcn_modulated: bool = False, cbam: bool = False,
                 cbam_reduction: int = 16):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation,
                         norm_layer)
        width = self.conv2.in_channels
        self.dcn, self.dcn_modulated = dcn, dcn_modulated
        if dcn:
            self.conv2 = DeformConv2d(width, width, 3, stride=stride, padding=dilation,
                                      dilation=dilation, groups=groups, bias=False)
            self.conv2_offset = nn.Conv2d(width, (3 if dcn_modulated else 2) * 9, 3, stride=stride,
                                          padding=dilation, dilation=dilation)
            nn.init.zeros_(self.conv2_offset.weight)
            nn.init.zeros_(self.conv2_offset.bias)
        self.cbam = CBAM(planes * self.expansion, cbam_reduction) if cbam else None

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        if self.dcn:
            o = self.conv2_offset(out)
            if self.dcn_modulated:
                out = self.conv2(out, o[:, :18], torch.sigmoid(o[:, 18:]))
            else:
                out = self.conv2(out, o)
        else:
            out = self.conv2(out)
        out = self.relu(self.bn2(out))
        out = self.bn3(self.conv3(out))
        if self.cbam is not None:
            out = self.cbam(out)
        return self.relu(out + identity)


def _stages(stages: Iterable[int] | None) -> set[int]:
    stages = set(stages or ())
    if not stages <= {2, 3, 4, 5}:
        raise ValueError(f"stages are named c2..c5 (2, 3, 4, 5); got {sorted(stages)}")
    return stages


class ResNet50Body(nn.Module):
    """The ResNet-50 trunk (stem + c2..c5 = ``layer1..layer4``, no classifier) built from
    :class:`DANetBottleneck`, with torchvision's module names.

    ``width`` = channels of the stem and of the first stage's 3x3 conv (64 = ResNet-50); stage i
    has ``width * 2**(i-2)`` inner and 4x that output channels. ``dcn_stages`` / ``cbam_stages`` name
    the stages (2..5) whose bottlenecks get a deformable conv / CBAM.
    """

    def __init__(self, width: int = 64, blocks=(3, 4, 6, 3), dcn_stages=(), cbam_stages=(),
                 dcn_modulated: bool = False, cbam_reduction: int = 16, norm_layer=nn.BatchNorm2d,
                 in_channels: int = 3):
        super().__init__()
        dcn_stages, cbam_stages = _stages(dcn_stages), _stages(cbam_stages)
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inplanes = width
        self.out_channels_list = []
        for i, n in enumerate(blocks):
            stage, planes, stride = i + 2, width * 2 ** i, 1 if i == 0 else 2
            layer = []
            for j in range(n):
                downsample = None
                if j == 0 and (stride != 1 or self.inplanes != planes * 4):
                    downsample = nn.Sequential(
                        nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                        norm_layer(planes * 4))
                layer.append(DANetBottleneck(
                    self.inplanes, planes, stride if j == 0 else 1, downsample,
                    norm_layer=norm_layer, dcn=stage in dcn_stages, dcn_modulated=dcn_modulated,
                    cbam=stage in cbam_stages, cbam_reduction=cbam_reduction))
                self.inplanes = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            self.out_channels_list.append(planes * 4)
        # torchvision's ResNet init (He normal convs, BN weight 1, bias 0); the zero-initialised
        # offset convs and CBAM keep their own.
        for name, m in self.named_modules():
            if "conv2_offset" in name or "cbam" in name:
                continue
            if isinstance(m, (nn.Conv2d, DeformConv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _freeze(body: ResNet50Body, trainable_layers: int) -> None:
    """Freeze all but the last ``trainable_layers`` of (conv1, layer1..layer4), as torchvision."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in [0, 5], got {trainable_layers}")
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, p in body.named_parameters():
        if not any(name.startswith(t) for t in train):
            p.requires_grad_(False)


class SingleScaleBackbone(nn.Module):
    """Phase 1: the C4 map of the ResNet-50 trunk as the only feature map ``{"0": C4}``."""

    def __init__(self, body: ResNet50Body):
        super().__init__()
        body.layer4 = nn.Identity()          # C5 is not used without FPN (the RoIs read C4)
        self.body = body
        self.out_channels = body.out_channels_list[2]

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return OrderedDict([("0", b.layer3(b.layer2(b.layer1(x))))])


class SingleScaleRoIPool(nn.Module):
    """torchvision's ``roi_pool`` behind ``MultiScaleRoIAlign``'s call signature (phase 1).

    The feature-map scale is inferred like ``MultiScaleRoIAlign`` does: the power of two nearest
    to feature size / image size. Features in bf16 / fp16 (autocast) are pooled in fp32 and handed
    back in their own dtype, as torchvision's CUDA autocast wrapper of ``roi_pool`` does: its CPU
    kernel has no reduced-precision version (``roi_align`` has an autocast wrapper on CPU too)."""

    def __init__(self, featmap_name: str = "0", output_size: int = 7):
        super().__init__()
        self.featmap_name, self.output_size = featmap_name, (output_size, output_size)

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor],
                image_shapes: list[tuple[int, int]]) -> Tensor:
        x = features[self.featmap_name]
        size = max(max(s) for s in image_shapes)
        scale = 2.0 ** round(math.log2(max(x.shape[-2:]) / size))
        if x.dtype in (torch.float32, torch.float64):
            return roi_pool(x, proposals, self.output_size, scale)
        pooled = roi_pool(x.float(), [p.float() for p in proposals], self.output_size, scale)
        return pooled.to(x.dtype)


# --- focal loss in the box classifier (phase 5) ----------------------------------------------------
def softmax_focal_loss(logits: Tensor, target: Tensor, alpha: float | None = 0.25,
                       gamma: float = 2.0) -> Tensor:
    """Mean over rows of ``-alpha_t (1 - p_t)^gamma log p_t`` (Eq. 10), ``p_t`` = softmax
    probability of the target class; ``alpha_t`` = alpha for targets > 0 (defects), 1 - alpha for
    target 0 (background). ``alpha=None, gamma=0`` is exactly ``F.cross_entropy``."""
    logp_t = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    loss = -(1 - logp_t.exp()).pow(gamma) * logp_t if gamma else -logp_t
    if alpha is not None:
        loss = loss * torch.where(target > 0, alpha, 1 - alpha)
    return loss.mean() if loss.numel() else logits.sum() * 0


class FocalRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` whose classification loss is the focal loss; the box
    regression loss (smooth L1) and inference are torchvision's."""

    def __init__(self, *args, focal_alpha: float | None = 0.25, focal_gamma: float = 2.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def forward(self, features, proposals, image_shapes, targets=None):
        if not self.training:
            return super().forward(features, proposals, image_shapes, targets)
        proposals, _, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        _, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        loss_cls = softmax_focal_loss(class_logits, torch.cat(labels), self.focal_alpha,
                                      self.focal_gamma)
        return [], {"loss_classifier": loss_cls, "loss_box_reg": loss_box_reg}


# --- builder ---------------------------------------------------------------------------------------
def build_danet(phase: int = 5, num_classes: int = 6, weights=None, *, width: int = 64,
                fpn_channels: int = 256, representation_size: int = 1024,
                dcn_stages=(3, 4, 5), dcn_modulated: bool = False, cbam_stages=(2, 3, 4, 5),
                cbam_reduction: int = 16, focal_alpha: float | None = 0.25,
                focal_gamma: float = 2.0, trainable_layers: int | None = None, frozen_bn: bool | None = None,
                anchor_sizes=(32, 64, 128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0),
                **faster_rcnn_kwargs) -> FasterRCNN:
    """One phase (1-5) of the paper's ablation as a torchvision :class:`FasterRCNN`.

    ``num_classes`` counts defect classes (background is added). ``weights``: None (from
    scratch), a path or state dict, or a torchvision weights enum (e.g.
    ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1`` or ``ResNet50_Weights.IMAGENET1K_V1``, fetched by
    torchvision, for online users); with weights the BNs are frozen and ``trainable_layers``
    defaults to 3, as in torchvision; ``frozen_bn=True`` builds that shape without the weights (what
    ``defectlib doctor`` measures for a run that will load them). Other keyword arguments (``min_size``, ``max_size``,
    ``box_batch_size_per_image``, ``rpn_post_nms_top_n_train``...) go to ``FasterRCNN``.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {sorted(PHASES)}, got {phase!r}")
    pretrained = weights is not None
    frozen = pretrained if frozen_bn is None else bool(frozen_bn)
    norm_layer = FrozenBatchNorm2d if frozen else nn.BatchNorm2d
    if trainable_layers is None:
        trainable_layers = 3 if frozen else 5
    body = ResNet50Body(width, dcn_stages=dcn_stages if phase >= 3 else (),
                        cbam_stages=cbam_stages if phase >= 4 else (), dcn_modulated=dcn_modulated,
                        cbam_reduction=cbam_reduction, norm_layer=norm_layer)
    _freeze(body, trainable_layers)
    for m in body.modules():          # new layers always train, even in frozen stages
        if isinstance(m, DANetBottleneck):
            for sub in (getattr(m, "conv2_offset", None), m.cbam):
                if sub is not None:
                    sub.requires_grad_(True)
    sizes = tuple(anchor_sizes)
    ratios = tuple(aspect_ratios)
    if phase == 1:
        backbone = SingleScaleBackbone(body)
        anchors = AnchorGenerator((sizes,), (ratios,))
        roi = SingleScaleRoIPool("0", 7)
    else:
        backbone = BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)},
                                   body.out_channels_list, fpn_channels)
        anchors = AnchorGenerator(tuple((s,) for s in sizes), (ratios,) * len(sizes))
        roi = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(backbone.out_channels * 7 * 7, representation_size)
    predictor = FastRCNNPredictor(representation_size, num_classes + 1)
    model = FasterRCNN(backbone, rpn_anchor_generator=anchors,
                       box_roi_pool=roi if phase > 1 else MultiScaleRoIAlign(["0"], 7, 2),
                       box_head=box_head, box_predictor=predictor, **faster_rcnn_kwargs)
    model.roi_heads.box_roi_pool = roi   # FasterRCNN type-checks for MultiScaleRoIAlign
    if phase == 5:
        rh = model.roi_heads
        model.roi_heads = FocalRoIHeads(
            rh.box_roi_pool, rh.box_head, rh.box_predictor,
            faster_rcnn_kwargs.get("box_fg_iou_thresh", 0.5),
            faster_rcnn_kwargs.get("box_bg_iou_thresh", 0.5),
            faster_rcnn_kwargs.get("box_batch_size_per_image", 512),
            faster_rcnn_kwargs.get("box_positive_fraction", 0.25),
            faster_rcnn_kwargs.get("bbox_reg_weights"),
            rh.score_thresh, rh.nms_thresh, rh.detections_per_img,
            focal_alpha=focal_alpha, focal_gamma=focal_gamma)
    for part in (model.rpn, model.roi_heads):   # boxes are decoded in fp32 under bf16 / fp16 autocast
        part.box_coder = FP32BoxCoder(part.box_coder.weights, part.box_coder.bbox_xform_clip)
    model.phase = phase
    if pretrained:
        model.pretrained_report = load_pretrained(model, weights)
    return model



def pretrained_file(weights) -> tuple[Path, str]:
    """Where torchvision keeps a weights enum's file once downloaded (torch.hub's cache under
    ``$TORCH_HOME``), and the URL it comes from. A GPU node without internet runs the paper profile
    once the file is copied there; the dry run says whether it is."""
    from urllib.parse import urlparse

    from torch.hub import get_dir
    return Path(get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name, weights.url


def load_pretrained(model: nn.Module, weights) -> dict:
    """Load every tensor of ``weights`` whose name and shape match ``model`` (strict=False).

    ``weights``: a torchvision weights enum, a path to a saved state dict, or a state dict. A
    detector state dict (keys ``backbone.body.*``, ``backbone.fpn.*``, ``rpn.*``, ``roi_heads.*``,
    as torchvision's COCO Faster R-CNN) loads as is; a classification ResNet state dict
    (``conv1.*``, ``layer1.*``...) loads into ``backbone.body``. Returns what was loaded, what
    had the wrong shape (e.g. the 91-class COCO predictor) and what stayed initialised
    (e.g. offsets, CBAM)."""
    if hasattr(weights, "get_state_dict"):          # torchvision WeightsEnum (downloads once)
        file, url = pretrained_file(weights)
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except OSError as exc:                      # URLError, no route, DNS: a node without internet
            raise RuntimeError(f"could not download the pretrained weights {url} ({exc}); on a machine "
                               f"without internet, copy that file to {file} (torch.hub's cache, "
                               "$TORCH_HOME) and run again") from exc
    elif isinstance(weights, (str, Path)):
        state = torch.load(weights, map_location="cpu", weights_only=True)
    elif isinstance(weights, dict):
        state = weights
    else:
        raise TypeError(f"weights must be a torchvision weights enum, a path or a state dict, "
                        f"got {type(weights).__name__}")
    if not any(k.startswith("backbone.") for k in state):
        state = {f"backbone.body.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    ok = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    wrong_shape = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    if not ok:
        raise ValueError("no tensor of the given weights matches this model (names or shapes)")
    model.load_state_dict(ok, strict=False)
    missing = sorted(k for k in own if k not in ok and not k.endswith("num_batches_tracked"))
    return {"loaded": len(ok), "wrong_shape": wrong_shape, "initialised": missing}


# --- helpers for training and for the notebook ----------------------------------------------------
def collect_offsets(model: nn.Module, images: list[Tensor]) -> dict[str, Tensor]:
    """Run ``model`` (eval) on ``images`` and return each deformable conv's offsets by module
    name, ``[B, 18, Ho, Wo]`` (dy, dx per tap), via forward hooks."""
    found, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, DANetBottleneck) and m.dcn:
            hooks.append(m.conv2_offset.register_forward_hook(
                lambda mod, inp, out, name=name: found.__setitem__(name, out[:, :18].detach())))
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(images)
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return found

