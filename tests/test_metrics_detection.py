"""COCO evaluation in defectlib.metrics.detection against pycocotools and faster-coco-eval."""
import contextlib
import io

import numpy as np
import pytest
import torch

from defectlib.metrics.detection import COCO_STAT_NAMES, COCOEvaluator, evaluate_detections

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def random_case(rng, n_img=30, n_cls=4, max_gt=6, max_det=40, p_crowd=0.1, p_empty=0.15,
                p_nodet=0.15, absent=(), size=200.0, integer=False):
    """Random images with clustered ("crowds of") boxes, empty images, images without detections,
    crowd annotations, explicit areas on some images and classes absent from the ground truth.
    ``integer``: small integer boxes on a coarse grid, so that exact IoU ties between boxes occur."""
    present = [c for c in range(1, n_cls + 1) if c not in absent]
    preds, targets = [], []
    for i in range(n_img):
        n_gt = 0 if rng.random() < p_empty else int(rng.integers(1, max_gt + 1))
        centre = rng.uniform(20, size - 20, 2)
        xy = np.clip(centre + rng.normal(0, 30, (n_gt, 2)), 0, size - 5)
        wh = rng.uniform(3, 110, (n_gt, 2))
        gb = np.concatenate([xy, np.minimum(xy + wh, size)], 1)
        if integer:
            gb = np.round(gb / 10) * 10
            gb[:, 2:] = np.maximum(gb[:, 2:], gb[:, :2] + 10)
        gl = rng.choice(present, n_gt)
        crowd = (rng.random(n_gt) < p_crowd).astype(np.int64)
        t = {"boxes": torch.tensor(gb, dtype=torch.float32), "labels": torch.tensor(gl),
             "iscrowd": torch.tensor(crowd)}
        if rng.random() < 0.2 and n_gt:
            t["area"] = torch.tensor(rng.uniform(0.3, 1.0, n_gt) * wh[:, 0] * wh[:, 1])
        targets.append(t)
        n_dt = 0 if rng.random() < p_nodet else int(rng.integers(1, max_det + 1))
        src = rng.integers(0, max(n_gt, 1), n_dt)
        near = (rng.random(n_dt) < 0.6) & (n_gt > 0)
        base = gb[src] if n_gt else np.zeros((n_dt, 4))
        jitter = base + rng.normal(0, 6, (n_dt, 4))
        rnd_xy = rng.uniform(0, size - 10, (n_dt, 2))
        rnd = np.concatenate([rnd_xy, rnd_xy + rng.uniform(2, 90, (n_dt, 2))], 1)
        db = np.where(near[:, None], jitter, rnd)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 0.5)
        if integer:
            db = np.round(db / 10) * 10
            db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 10)
        dl = np.where(near & (rng.random(n_dt) < 0.8), gl[src] if n_gt else 1,
                      rng.integers(1, n_cls + 1, n_dt))
        sc = rng.random(n_dt)
        if n_dt > 3:  # exact score ties inside and across images
            sc[: n_dt // 4] = np.round(sc[: n_dt // 4], 1)
        preds.append({"boxes": torch.tensor(db, dtype=torch.float32), "scores": torch.tensor(sc),
                      "labels": torch.tensor(dl)})
    return preds, targets


def _coco_dicts(preds, targets, n_cls):
    images, anns, dets = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        images.append({"id": i + 1, "width": 200, "height": 200})
        b = t["boxes"].double().numpy()
        for j in range(len(b)):
            x1, y1, x2, y2 = b[j]
            area = float(t["area"][j]) if "area" in t else float((x2 - x1) * (y2 - y1))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(t["labels"][j]),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area,
                         "iscrowd": int(t["iscrowd"][j]) if "iscrowd" in t else 0})
        pb = p["boxes"].double().numpy()
        for j in range(len(pb)):
            x1, y1, x2, y2 = pb[j]
            dets.append({"image_id": i + 1, "category_id": int(p["labels"][j]),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(p["scores"][j])})
    cats = [{"id": c, "name": str(c)} for c in range(1, n_cls + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def run_oracle(module_coco, module_eval, preds, targets, n_cls, max_dets=None):
    gt_dict, dets = _coco_dicts(preds, targets, n_cls)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = module_coco()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = module_eval(gt, dt, "bbox")
        if max_dets is not None:
            ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _per_class(prec, iou_index=None):
    p = prec[:, :, :, 0, -1] if iou_index is None else prec[[iou_index], :, :, 0, -1]
    out = []
    for k in range(p.shape[2]):
        v = p[:, :, k]
        v = v[v > -1]
        out.append(np.mean(v) if v.size else np.nan)
    return np.array(out)


@pytest.mark.parametrize("seed", range(8))
def test_equals_pycocotools_random(seed):
    rng = np.random.default_rng(seed)
    n_cls = 5
    preds, targets = random_case(rng, n_cls=n_cls, absent=(4,) if seed % 2 else (), integer=seed >= 6)
    ev = run_oracle(COCO, COCOeval, preds, targets, n_cls)
    res = evaluate_detections(preds, targets, num_classes=n_cls)
    np.testing.assert_allclose(res.stats, ev.stats, rtol=0, atol=1e-9)
    # same float operations as pycocotools: the arrays agree bit for bit
    np.testing.assert_array_equal(res.precision, ev.eval["precision"])
    np.testing.assert_array_equal(res.recall, ev.eval["recall"])
    np.testing.assert_array_equal(res.scores, ev.eval["scores"])
    ours = np.array(list(res.per_class_ap().values()))
    np.testing.assert_allclose(ours, _per_class(ev.eval["precision"]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.array(list(res.per_class_ap50().values())),
                               _per_class(ev.eval["precision"], 0), rtol=0, atol=1e-9)
    if seed % 2:  # a class absent from the ground truth is NaN, not 0, and left out of the means
        assert np.isnan(res.per_class_ap()[4])


@pytest.mark.parametrize("max_dets", [(1, 5, 50), (1, 10, 100, 200), (2, 20, 100), (3, 30, 60)])
def test_summary_follows_pycocotools_rule_for_other_max_dets(max_dets):
    # pycocotools: AP at maxDets=100 itself (-1 when absent), AR@1/AR@10 at maxDets[0]/[1], the rest at [2]
    rng = np.random.default_rng(21)
    preds, targets = random_case(rng, n_img=10, n_cls=3, max_det=150, p_nodet=0)
    ev = run_oracle(COCO, COCOeval, preds, targets, 3, max_dets)
    res = evaluate_detections(preds, targets, num_classes=3, max_dets=max_dets)
    np.testing.assert_allclose(res.stats, ev.stats, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.precision, ev.eval["precision"])
    assert (res.stats[0] == -1) == (100 not in max_dets)


@pytest.mark.parametrize("bad", [(1, 10), (100,), (10, 1, 100), (0, 10, 100), (1, 10.5, 100), "100"])
def test_max_dets_that_cannot_be_summarised_are_refused(bad):
    rng = np.random.default_rng(3)
    preds, targets = random_case(rng, n_img=3, n_cls=2)
    with pytest.raises(ValueError, match="max_dets"):
        evaluate_detections(preds, targets, num_classes=2, max_dets=bad)


def test_many_detections_per_class_truncated_at_100():
    rng = np.random.default_rng(11)
    preds, targets = random_case(rng, n_img=8, n_cls=2, max_gt=12, max_det=300, p_empty=0, p_nodet=0)
    ev = run_oracle(COCO, COCOeval, preds, targets, 2)
    res = evaluate_detections(preds, targets, num_classes=2)
    np.testing.assert_allclose(res.stats, ev.stats, rtol=0, atol=1e-9)


def test_equals_faster_coco_eval():
    fce = pytest.importorskip("faster_coco_eval")
    rng = np.random.default_rng(3)
    preds, targets = random_case(rng, n_cls=3)
    ev = run_oracle(fce.COCO, fce.COCOeval_faster, preds, targets, 3)
    res = evaluate_detections(preds, targets, num_classes=3)
    np.testing.assert_allclose(res.stats, np.asarray(ev.stats)[:12], rtol=0, atol=1e-9)


def test_hand_computed_case():
    # one image, class 1: two GT boxes; detections: a perfect hit (0.9), a miss (0.8), a
    # duplicate of the first GT (0.7, FP because the GT is taken), a hit on the second GT (0.6).
    g = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    d = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]])
    t = [{"boxes": g, "labels": torch.tensor([1, 1])}]
    p = [{"boxes": d, "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]), "labels": torch.tensor([1, 1, 1, 1])}]
    res = evaluate_detections(p, t, num_classes=1)
    # P/R after each det: (1, .5), (.5, .5), (1/3, .5), (.5, 1); envelope: 1 up to r=.5, .5 above
    eps = np.spacing(1)
    expected = (51 * (1 / (1 + eps)) + 50 * (2 / (4 + eps))) / 101
    assert res.ap50 == pytest.approx(expected, abs=1e-12)
    assert res.ap == pytest.approx(expected, abs=1e-12)  # every hit has IoU 1
    assert res.ar100 == 1.0 and res.stats[6] == 0.5  # AR@1: one det per image finds one of two
    rc, pr = res.pr_curve(1, interpolated=False)
    np.testing.assert_allclose(rc, [0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(pr, [1, 0.5, 1 / 3, 0.5], rtol=1e-12)


def test_iou_tie_goes_to_the_later_ground_truth_box():
    # det 1 overlaps A and B with the same IoU 100/120; pycocotools keeps the later box (B), so at
    # IoU 0.75 det 2, which fits B (0.833) but not A (0.571), finds B taken and is a false positive
    t = [{"boxes": torch.tensor([[0.0, 0, 10, 12], [0, -2, 10, 10]]), "labels": torch.tensor([1, 1])}]
    p = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [0, -2, 10, 8]]), "scores": torch.tensor([0.9, 0.8]),
          "labels": torch.tensor([1, 1])}]
    res = evaluate_detections(p, t, num_classes=1)
    ev = run_oracle(COCO, COCOeval, p, t, 1)
    t75 = 5
    assert res.recall[t75, 0, 0, -1] == ev.eval["recall"][t75, 0, 0, -1] == 0.5
    np.testing.assert_array_equal(res.stats, ev.stats)


def test_crowd_absorbs_detections_and_empty_inputs():
    t = [{"boxes": torch.tensor([[0.0, 0, 100, 100]]), "labels": torch.tensor([1]), "iscrowd": torch.tensor([1])},
         {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    p = [{"boxes": torch.tensor([[10.0, 10, 30, 30], [40, 40, 60, 60]]), "scores": torch.tensor([0.9, 0.8]),
          "labels": torch.tensor([1, 1])},
         {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}]
    res = evaluate_detections(p, t, num_classes=1)
    assert (res.stats == -1).all()  # only crowd GT: nothing to find, every stat undefined like pycocotools


def test_evaluator_accumulates_batches_and_checks_input():
    rng = np.random.default_rng(5)
    preds, targets = random_case(rng, n_img=12, n_cls=3)
    ev = COCOEvaluator(num_classes=3)
    ev.update(preds[:5], targets[:5])
    ev.update(preds[5:], targets[5:])
    np.testing.assert_array_equal(ev.compute().stats, evaluate_detections(preds, targets, 3).stats)
    assert set(ev.compute().as_dict()) == set(COCO_STAT_NAMES)
    with pytest.raises(ValueError, match="scores"):
        evaluate_detections([{"boxes": torch.zeros(1, 4), "labels": torch.ones(1)}], targets[:1], 3)
    with pytest.raises(ValueError, match="predictions for"):
        evaluate_detections(preds[:2], targets[:3], 3)


def test_no_detections_at_all_and_labels_outside_the_classes_refused():
    rng = np.random.default_rng(8)
    _, targets = random_case(rng, n_img=5, n_cls=2, p_empty=0, p_crowd=0)
    none = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
            for _ in targets]
    res = evaluate_detections(none, targets, num_classes=2)
    assert res.ap == 0.0 and res.ar100 == 0.0  # pycocotools' loadRes cannot even take an empty list
    # a detection labelled 0 (background) or 9 (no such class) is garbage, not a category to skip
    perfect = [{"boxes": t["boxes"], "scores": torch.ones(len(t["boxes"])), "labels": t["labels"]} for t in targets]
    assert evaluate_detections(perfect, targets, 2).ap == 1.0
    for bad in (0, 9):
        noisy = [dict(p, labels=torch.full_like(p["labels"], bad)) for p in perfect]
        with pytest.raises(ValueError, match=rf"predictions\[0\]\['labels'\]: .*found {bad}"):
            evaluate_detections(noisy, targets, 2)


def test_precision_recall_at_a_score_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    g = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    d = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]])
    t = [{"boxes": g, "labels": torch.tensor([1, 1])}]
    p = [{"boxes": d, "scores": torch.tensor([0.9, 0.8, 0.3]), "labels": torch.tensor([1, 1, 1])}]
    res = evaluate_detections(p, t, num_classes=1)
    prec, rec = res.precision_recall_at(0.5)[1]  # two detections kept: one hit, one miss
    assert prec == pytest.approx(0.5) and rec == pytest.approx(0.5)
    prec, rec = res.precision_recall_at(0.1)[1]
    assert prec == pytest.approx(2 / 3) and rec == pytest.approx(1.0)
    ax = res.plot_pr()
    assert len(ax.lines) == 1 and "AP" in ax.get_legend().get_texts()[0].get_text()
    assert "AP50" in res.summary()


def test_evaluate_detector_runs_a_model_over_a_loader_like_the_manual_loop():
    """The helper equals update-per-batch by hand, stops at max_batches and restores train mode."""
    from defectlib.metrics.detection import evaluate_detector

    rng = np.random.default_rng(11)
    preds, targets = random_case(rng, n_img=6, n_cls=3)

    class Replay(torch.nn.Module):           # a "detector" answering the stored predictions in order
        def __init__(self):
            super().__init__()
            self.i, self.grad_enabled = 0, []

        def forward(self, images):
            self.grad_enabled.append(torch.is_grad_enabled())
            out = [{k: torch.as_tensor(v) for k, v in p.items()} for p in preds[self.i:self.i + len(images)]]
            self.i += len(images)
            return out

    loader = [([torch.zeros(1, 4, 4)] * 2, targets[k:k + 2]) for k in range(0, 6, 2)]
    model = Replay().train()
    res = evaluate_detector(model, loader, num_classes=3)
    np.testing.assert_array_equal(res.stats, evaluate_detections(preds, targets, 3).stats)
    assert model.training and model.grad_enabled == [False] * 3
    model.i = 0
    part = evaluate_detector(model, loader, num_classes=3, max_batches=1)
    np.testing.assert_array_equal(part.stats, evaluate_detections(preds[:2], targets[:2], 3).stats)
