"""OCINet (paper 003): parameter counts of every Table II/III variant, FLOPs, module behaviour,
one training step per variant, the evaluation protocol.

Oracles: the paper's own #Param column (Table III, to the printed 0.001 M) and FLOPs (Table I),
explicit einsum / loop re-computations of CCAU and CPIM, and dependency checks (what may and may
not influence what) that follow from the paper's separation-recombination design.
"""
from __future__ import annotations

import pytest
import torch

from defectlib import papers
from defectlib.models.ocinet import (CCIM, CPIM, CSIM, VARIANTS, build_ocinet, capture_attention,
                                     channel_shuffle, count_parameters)
from defectlib.models.ocinet.ccim import CollaborativeChannelAttentionUnit
from defectlib.experiments.ocinet import ocinet_loss_fn
from defectlib.viz import error_overlay
from defectlib.models.ocinet.fusion import CrossScaleStage, PerLevelStage
from defectlib.models.ocinet.vanilla import ChannelAttention

_MODELS: dict[str, torch.nn.Module] = {}


def model(variant: str) -> torch.nn.Module:
    if variant not in _MODELS:
        torch.manual_seed(0)
        _MODELS[variant] = build_ocinet(variant)
    return _MODELS[variant]


def test_every_variant_has_a_paper_row():
    for v in VARIANTS.values():
        assert papers.lookup(f"{v.paper}/params_M") == v.params_m
        for column in ("man-made", "natural"):
            papers.lookup(f"{v.paper}/{column}/IoU")


def test_full_model_is_pinned_at_29_95M():
    n = count_parameters(model("full"))
    assert abs(n / 1e6 - 29.95) <= 0.005 * 29.95, n
    assert n == 29_952_278  # backbone 24,849,856 + OCINet's own layers 5,102,422


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_params_match_table3(variant, capsys):
    ours = count_parameters(model(variant)) / 1e6
    paper = papers.lookup(f"{VARIANTS[variant].paper}/params_M")
    with capsys.disabled():
        print(f"\n  {VARIANTS[variant].label:28s} ours {ours:7.3f} M   paper {paper:7.3f} M")
    assert round(ours, 3) == pytest.approx(paper, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_trains_one_step(variant):
    m = model(variant).train()
    x, y = torch.rand(2, 1, 64, 64), (torch.rand(2, 1, 64, 64) > 0.8).float()
    loss_fn = ocinet_loss_fn()
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    loss = loss_fn(m, (x, y), torch.device("cpu"))["loss"]
    loss.backward()
    grads = [p.grad for p in m.parameters()]
    assert torch.isfinite(loss) and all(g is not None for g in grads), "a parameter got no gradient"
    opt.step()
    opt.zero_grad(set_to_none=True)
    m.eval()
    with torch.no_grad():
        out = m(x)
    assert len(out) == 4 and all(o.shape == (2, 1, 64, 64) for o in out)


@pytest.mark.slow
def test_flops_at_352_match_table1(capsys):
    from defectlib.complexity import count_flops
    flops = count_flops(model("full"), (1, 3, 352, 352))
    gmacs = flops / 2e9  # the paper's "FLOPs" are multiply-accumulates (thop convention)
    with capsys.disabled():
        print(f"\n  OCINet at 352x352: {flops / 1e9:.2f} GFLOPs = {gmacs:.2f} GMACs; paper 18.82 G")
    assert gmacs == pytest.approx(papers.lookup("ocinet/table1/OCINet/FLOPs_G"), rel=0.02)


# --- modules --------------------------------------------------------------------------------------
def test_channel_shuffle_interleaves_groups():
    x = torch.arange(8.).view(1, 8, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_ccau_matches_explicit_computation():
    torch.manual_seed(0)
    unit = CollaborativeChannelAttentionUnit(group_channels=4, reduction=4)
    a, b = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 3, 3)
    w1, w2 = unit.mlp[0].weight[:, :, 0, 0], unit.mlp[2].weight[:, :, 0, 0]
    perm = [0, 4, 1, 5, 2, 6, 3, 7]  # shuffle of 8 = 2 groups x 4
    for i in range(2):
        avg = torch.cat([a[i].mean((1, 2)), b[i].mean((1, 2))])[perm]
        mx = torch.cat([a[i].amax((1, 2)), b[i].amax((1, 2))])[perm]
        ca = torch.sigmoid(w2 @ torch.relu(w1 @ avg) + w2 @ torch.relu(w1 @ mx))
        oa, ob = unit(a[i:i + 1], b[i:i + 1])
        torch.testing.assert_close(oa[0], a[i] * ca[:4, None, None])
        torch.testing.assert_close(ob[0], b[i] * ca[4:, None, None])


def test_ccim_groups_interact_across_scales_but_not_across_groups():
    torch.manual_seed(0)
    m = CCIM(channels=16, groups=4, reduction=2)
    hi, lo = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4)
    hi2 = hi.clone()
    hi2[:, 4:8] += 5 * torch.randn(1, 4, 8, 8)  # perturb group 2 of the high-res level only
    _, lo_a = m(hi, lo)
    _, lo_b = m(hi2, lo)
    assert not torch.allclose(lo_a[:, 4:8], lo_b[:, 4:8])           # cross-scale: group 2 of lo moved
    torch.testing.assert_close(lo_a[:, :4], lo_b[:, :4])            # other groups did not
    torch.testing.assert_close(lo_a[:, 8:], lo_b[:, 8:])


def test_csim_top_and_bottom_halves_are_separate_units():
    torch.manual_seed(0)
    m = CSIM()
    hi, lo = torch.randn(1, 8, 16, 16), torch.randn(1, 8, 8, 8)
    lo2 = lo.clone()
    lo2[:, :, :2] += 5  # top rows of the low-res level
    hi_a, _ = m(hi, lo)
    hi_b, _ = m(hi, lo2)
    assert not torch.allclose(hi_a[:, :, :8], hi_b[:, :, :8])        # top half of hi reacts
    torch.testing.assert_close(hi_a[:, :, 8:], hi_b[:, :, 8:])       # bottom half cannot see it


def test_cpim_matches_einsum_reference():
    torch.manual_seed(0)
    m = CPIM(channels=4).eval()
    with torch.no_grad():
        m.gamma1.fill_(0.7)
        m.gamma2.fill_(1.3)
    hi, lo = torch.randn(2, 4, 8, 6), torch.randn(2, 4, 4, 3)
    conv = lambda layer, x: torch.nn.functional.conv2d(x, layer.weight, layer.bias)  # noqa: E731
    x1 = torch.nn.functional.interpolate(hi, size=(4, 3), mode="bilinear", align_corners=True)
    q, k, v1, v2 = conv(m.query, x1), conv(m.key, lo), conv(m.value1, x1), conv(m.value2, lo)
    energy = torch.einsum("bcyu,bcyv->bcuv", q, k)                   # A[c,u,v] = sum_y Q[c,y,u] K[c,y,v]
    o1 = torch.einsum("bcyv,bcuv->bcyu", v1, energy.softmax(-1))     # column u of V1 mixed by A[u, :]
    o2 = torch.einsum("bcyu,bcuv->bcyv", v2, energy.softmax(-2))     # column v of V2 mixed by A[:, v]
    o1 = torch.nn.functional.interpolate(o1, size=(8, 6), mode="bilinear", align_corners=True)
    with torch.no_grad():
        ref1, ref2 = m.out1(0.7 * o1 + hi), m.out2(1.3 * o2 + lo)
        out1, out2 = m(hi, lo)
    torch.testing.assert_close(out1, ref1)
    torch.testing.assert_close(out2, ref2)


def test_cross_scale_stage_mixes_levels_per_level_stage_does_not():
    torch.manual_seed(0)
    feats = [torch.randn(1, 16, 16 >> i, 16 >> i) for i in range(4)]
    moved = [f.clone() for f in feats]
    moved[1] = moved[1] + 3
    cross = CrossScaleStage(lambda: CCIM(16, 4, 2), 16).eval()
    single = PerLevelStage(lambda: ChannelAttention(16, 4)).eval()
    with torch.no_grad():
        assert not torch.allclose(cross(feats)[0], cross(moved)[0])
        torch.testing.assert_close(single(feats)[0], single(moved)[0])


def test_reasoner_uses_its_own_head_for_s1():
    """The authors' code computes S^1 with S^2's head; ours must use heads[0]."""
    m = model("base").eval()
    with torch.no_grad():
        saved = [p.clone() for p in m.reasoner.heads[0].parameters()]
        for p in m.reasoner.heads[0].parameters():
            p.zero_()
        try:
            s = m(torch.rand(1, 1, 64, 64))
        finally:
            for p, v in zip(m.reasoner.heads[0].parameters(), saved):
                p.copy_(v)
    assert torch.count_nonzero(s[0]) == 0 and torch.count_nonzero(s[1]) > 0


def test_order_switch_changes_the_computation_not_the_parameters():
    torch.manual_seed(1)
    glg = build_ocinet("full").eval()
    ggl = build_ocinet("ggl").eval()
    ggl.load_state_dict(glg.state_dict())
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(glg(x)[0], ggl(x)[0])


def test_capture_attention_sees_every_unit():
    m = model("full").eval()
    with capture_attention(m) as att, torch.no_grad():
        m(torch.rand(1, 1, 64, 64))
    ccau = [k for k in att if k.startswith("ccim.") and k.endswith("gate")]
    csau = [k for k in att if k.startswith("csim.") and k.endswith("gate")]
    pix = [k for k in att if k.endswith("pixel_attention")]
    assert (len(ccau), len(csau), len(pix)) == (12, 6, 3)
    a1, a2 = att["cpim.pair12.pixel_attention"]
    torch.testing.assert_close(a1.sum(-2), torch.ones_like(a1.sum(-2)))  # A^T: columns sum to 1
    torch.testing.assert_close(a2.sum(-2), torch.ones_like(a2.sum(-2)))


def test_backbone_loads_a_local_checkpoint(tmp_path):
    import timm
    ref = timm.create_model("pvt_v2_b2", pretrained=False)
    path = tmp_path / "pvt_v2_b2.pth"
    torch.save(ref.state_dict(), path)
    m = build_ocinet("base", weights=path)
    torch.testing.assert_close(m.backbone.body.patch_embed.proj.weight, ref.patch_embed.proj.weight)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_ocinet("base", weights=tmp_path / "missing.pth")


def test_bad_switches_are_rejected():
    with pytest.raises(KeyError, match="unknown OCINet variant"):
        build_ocinet("nope")
    with pytest.raises(ValueError, match="ccim="):
        build_ocinet("full", ccim="cbam")
    with pytest.raises(TypeError, match="unknown switches"):
        build_ocinet("full", cpim_heads=2)


# --- evaluation protocol --------------------------------------------------------------------------
def test_error_overlay_uses_fig6_colours():
    pred = torch.tensor([[1, 1], [0, 0]], dtype=torch.bool).numpy()
    gt = torch.tensor([[1, 0], [1, 0]], dtype=torch.bool).numpy()
    rgb = error_overlay(pred, gt)
    assert rgb[0, 0].tolist() == [255, 255, 255]   # correct
    assert rgb[0, 1].tolist() == [255, 0, 0]       # false positive
    assert rgb[1, 0].tolist() == [0, 255, 0]       # missed
    assert rgb[1, 1].tolist() == [0, 0, 0]
