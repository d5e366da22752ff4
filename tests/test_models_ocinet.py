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


# --- Table III rows 8-10: other papers' attention modules in CSIM's place ------------------------
THIRD_PARTY = {"swsam": 28_154_446, "rscam": 28_175_812, "lskm": 28_507_414}


def test_third_party_modules_have_the_budgeted_parameter_counts():
    """Base (27,856,580) + the cross-scale stage's two fusion units (295,424) + three pair modules:
    2 SWSAMs of 407, one RCA(256) of 7,936 (2x2 local kernel; 9,216 with 3x3), one LSK(256) of 118,470."""
    from defectlib.models.ocinet import SWSAM, LargeSelectiveKernel, RectangularSelfCalibrationAttention
    assert count_parameters(SWSAM()) == 4 * 98 + 4 + 11 == 407
    assert count_parameters(RectangularSelfCalibrationAttention(256)) == 31 * 256 == 7_936
    assert count_parameters(RectangularSelfCalibrationAttention(256, square_kernel=3)) == 9_216
    assert count_parameters(LargeSelectiveKernel(256)) == 1.5 * 256 ** 2 + 78 * 256 + 198 == 118_470
    base, fusion = count_parameters(model("base")), 2 * (128 * 128 * 9 + 2 * 128)
    assert base == 27_856_580
    for variant, per_pair in (("swsam", 2 * 407), ("rscam", 7_936), ("lskm", 118_470)):
        assert THIRD_PARTY[variant] == base + fusion + 3 * per_pair
        stage = model(variant).csim
        assert count_parameters(stage) == fusion + 3 * per_pair
        assert round(THIRD_PARTY[variant] / 1e6, 3) == VARIANTS[variant].params_m


@pytest.mark.parametrize("variant", list(THIRD_PARTY))
def test_third_party_variant_forward_at_64(variant):
    m = model(variant).eval()
    assert count_parameters(m) == THIRD_PARTY[variant]
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        feats = m.forward_features(x)
        out = m(x)
    assert set(feats) == {"basic", "csim", "final"}
    assert [f.shape for f in feats["csim"]] == [f.shape for f in feats["basic"]]
    assert len(out) == 4 and all(o.shape == (2, 1, 64, 64) and torch.isfinite(o).all() for o in out)


def test_swsam_matches_explicit_computation():
    from defectlib.models.ocinet import SWSAM
    torch.manual_seed(0)
    m = SWSAM().eval()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([0.3, -1.0, 2.0, 0.5]))
        m.refine[1].running_mean.fill_(0.2)
        m.refine[1].running_var.fill_(1.5)
    x = torch.randn(2, 16, 9, 7)
    conv = torch.nn.functional.conv2d
    groups = channel_shuffle(x, 4).chunk(4, 1)   # 4 channels each, one from every source group
    assert groups[0][:, 1].equal(x[:, 4])
    w = torch.softmax(torch.tensor([0.3, -1.0, 2.0, 0.5]), 0)
    s = sum(w[k] * torch.sigmoid(conv(torch.cat([g.mean(1, keepdim=True), g.amax(1, keepdim=True)], 1),
                                      m.branch[k].conv.weight, padding=3)) for k, g in enumerate(groups))
    bn = m.refine[1]
    r = (conv(s, m.refine[0].weight, padding=1) - 0.2) / (1.5 + bn.eps) ** 0.5 * bn.weight + bn.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x), x * torch.sigmoid(r) + x)


def test_rscam_is_rectangular_and_depthwise():
    from defectlib.models.ocinet import RectangularSelfCalibrationAttention
    torch.manual_seed(0)
    m = RectangularSelfCalibrationAttention(8).eval()
    x = torch.randn(1, 8, 11, 13)
    y = m(x)
    assert y.shape == x.shape                                       # the 2x2 local kernel keeps the size
    # the attention sees x only through its row and column means: a change that keeps them keeps it
    d = torch.zeros(11, 13)
    d[2, 3], d[2, 5], d[4, 3], d[4, 5] = 1.0, -1.0, -1.0, 1.0
    att = {}
    m.gate.register_forward_hook(lambda _m, _i, o: att.setdefault(len(att), o))
    with torch.no_grad():
        m(x), m(x + d)
    torch.testing.assert_close(att[0], att[1])
    # depthwise throughout: channel 3 does not move the others
    x2 = x.clone()
    x2[:, 3] += 5
    with torch.no_grad():
        y2 = m(x2)
    torch.testing.assert_close(y2[:, [0, 1, 2, 4, 5, 6, 7]], y[:, [0, 1, 2, 4, 5, 6, 7]])
    assert not torch.allclose(y2[:, 3], y[:, 3])


def test_third_party_pairs_cross_scales_only_where_the_module_mixes_channels():
    """SWSAM runs per scale; RCA on the concatenation is depthwise, so the two scales still do not
    meet inside the pair; LSK's 1x1 convolutions and channel mean / max mix them."""
    from defectlib.models.ocinet.fusion import ConcatPair, ScalewisePair
    from defectlib.models.ocinet import SWSAM, LargeSelectiveKernel, RectangularSelfCalibrationAttention
    torch.manual_seed(0)
    hi, lo = torch.randn(1, 8, 16, 16), torch.randn(1, 8, 8, 8)
    pairs = {"swsam": ScalewisePair(SWSAM), "rscam": ConcatPair(RectangularSelfCalibrationAttention(16)),
             "lskm": ConcatPair(LargeSelectiveKernel(16))}
    for name, pair in pairs.items():
        pair.eval()
        with torch.no_grad():
            (a_hi, a_lo), (b_hi, _) = pair(hi, lo), pair(hi, lo + 3 * torch.randn_like(lo))
        assert a_hi.shape == hi.shape and a_lo.shape == lo.shape
        assert torch.allclose(a_hi, b_hi) == (name != "lskm"), name


def test_capture_attention_sees_the_third_party_gates():
    m = model("lskm").eval()
    with capture_attention(m) as att, torch.no_grad():
        m(torch.rand(1, 1, 64, 64))
    gates = {k: v for k, v in att.items() if k.startswith("csim.")}
    assert len(gates) == 3 and all(v.shape[1] == 2 and ((v > 0) & (v < 1)).all() for v in gates.values())


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
