"""Notebook 01 (DANet, paper 000): solutions to the exercises at the end of the notebook."""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import FeaturePyramidNetwork, box_iou


def focal_over_ce(p_t: float, gamma: float = 2.0, alpha: float = 0.25) -> float:
    """Exercise 1: the focal loss (paper Eq. 10) of an example whose true class has probability
    ``p_t``, as a fraction of its cross-entropy (Eq. 7): ``alpha (1 - p_t)^gamma``, what
    ``danet.softmax_focal_loss(logits, target) / danet.softmax_focal_loss(logits, target, alpha=None,
    gamma=0)`` gives for a defect RoI (tests/test_solutions.py checks both)."""
    ce = -math.log(p_t)
    fl = -alpha * (1 - p_t) ** gamma * math.log(p_t)
    return fl / ce


class BilinearFPN(FeaturePyramidNetwork):
    """Exercise 2: torchvision's FPN with the paper's bilinear top-down upsampling (Sec. III-C)
    instead of the nearest neighbour; the same layers and weights."""

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        names, feats = list(x), list(x.values())
        last = self.get_result_from_inner_blocks(feats[-1], -1)
        results = [self.get_result_from_layer_blocks(last, -1)]
        for idx in range(len(feats) - 2, -1, -1):
            lateral = self.get_result_from_inner_blocks(feats[idx], idx)
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            results.insert(0, self.get_result_from_layer_blocks(last, idx))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, feats, names)
        return OrderedDict(zip(names, results))


def use_bilinear_fpn(detector):
    """Exercise 2: switch a detector built by ``danet.build_danet(phase >= 2)`` to bilinear
    upsampling in place, keeping its weights."""
    detector.backbone.fpn.__class__ = BilinearFPN
    return detector


def ap50_by_hand(boxes, scores, gt_boxes, iou_threshold: float = 0.5) -> float:
    """Exercise 3: COCO's AP of one class on one image, the four steps of notebook section 8:
    IoU, greedy matching in score order, precision / recall, 101-point interpolated AP."""
    boxes, gt_boxes = torch.as_tensor(boxes, dtype=torch.float64), torch.as_tensor(gt_boxes, dtype=torch.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
    iou = box_iou(boxes, gt_boxes).numpy() if len(boxes) and len(gt_boxes) else np.zeros((len(boxes), len(gt_boxes)))
    taken = np.zeros(len(gt_boxes), bool)
    tp = []
    for k in order:                                         # highest score first
        best, j_best = iou_threshold, -1
        for j in range(len(gt_boxes)):
            if not taken[j] and iou[k, j] >= best:
                best, j_best = iou[k, j], j
        if j_best >= 0:
            taken[j_best] = True
        tp.append(j_best >= 0)
    tp = np.array(tp, bool)
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    recall = np.cumsum(tp) / max(len(gt_boxes), 1)
    ap = 0.0
    for r in np.linspace(0, 1, 101):                        # p(r) = best precision at recall >= r
        reached = precision[recall >= r - 1e-12]
        ap += reached.max() if len(reached) else 0.0
    return ap / 101
