"""Cross-scale Channel Interaction Module (CCIM) and its Collaborative Channel Attention Unit.

OCINet, Sec. III-B and Fig. 3. For a pair of adjacent levels (f_b^i, f_b^{i+1}), each c = 128
channels:

1. *Separation*: split both along channels into 4 groups of c/4 = 32:
   {f_b^{i,1..4}} and {f_b^{i+1,1..4}}; pair group k of one level with group k of the other.
2. *CCAU* on each pair (f^{i,k}, f^{i+1,k}):
       a = ChannelShuffle_2([GAP(f^{i,k}); GAP(f^{i+1,k})])        (c/2 = 64 values)
       m = ChannelShuffle_2([GMP(f^{i,k}); GMP(f^{i+1,k})])
       ca^k = sigmoid(MLP(a) + MLP(m)),  MLP = 1x1 conv 64 -> 16 -> 64, no bias, ReLU between
       ca^{i,k}, ca^{i+1,k} = split(ca^k, 32)                        (no un-shuffle, as the code)
       f_ci^{i,k} = ca^{i,k} * f^{i,k},   f_ci^{i+1,k} = ca^{i+1,k} * f^{i+1,k}
3. *Recombination*: concatenate the four groups of each level back to 128 channels.

The two scales' statistics enter one shared MLP, so each level's channel weights depend on the
other level too: that is the "cross-scale" part. (A teaching note: a channel shuffle placed right
before a fully connected layer only permutes that layer's input weights, so here it changes the
initialisation, not what the unit can represent.)

The fusion of the two outputs that land on levels 2 and 3 lives in :mod:`.fusion`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def channel_mlp(channels: int, hidden: int) -> nn.Sequential:
    """CBAM's shared MLP as 1x1 convolutions: ``channels -> hidden -> channels``, no bias, ReLU."""
    return nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, channels, 1, bias=False))


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle: ``[B, g*n, ...] -> [B, n*g, ...]`` interleaving the groups."""
    b, c = x.shape[:2]
    return x.reshape(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


class CollaborativeChannelAttentionUnit(nn.Module):
    """CCAU: joint channel attention for one channel group of two adjacent scales (Fig. 3, right).

    ``forward(a, b)`` takes the k-th group of each level (``[B, g, H_a, W_a]``, ``[B, g, H_b, W_b]``,
    same ``g``) and returns them re-weighted. The sigmoid is the submodule ``gate``, so a forward
    hook on it reads the channel weights ``ca^k`` (``[B, 2g, 1, 1]``).
    """

    def __init__(self, group_channels: int = 32, reduction: int = 4, shuffle_groups: int = 2):
        super().__init__()
        joint = 2 * group_channels
        self.group_channels = group_channels
        self.shuffle_groups = shuffle_groups
        self.mlp = channel_mlp(joint, joint // reduction)
        self.gate = nn.Sigmoid()

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        avg = torch.cat([a.mean((2, 3), keepdim=True), b.mean((2, 3), keepdim=True)], 1)
        mx = torch.cat([a.amax((2, 3), keepdim=True), b.amax((2, 3), keepdim=True)], 1)
        avg = channel_shuffle(avg, self.shuffle_groups)
        mx = channel_shuffle(mx, self.shuffle_groups)
        ca = self.gate(self.mlp(mx) + self.mlp(avg))
        ca_a, ca_b = ca.split(self.group_channels, dim=1)
        return a * ca_a, b * ca_b


class CCIM(nn.Module):
    """Cross-scale Channel Interaction Module for one pair of levels: ``(f_hi, f_lo) -> (f_hi', f_lo')``.

    ``groups`` CCAUs (4 in the paper), each on ``channels / groups`` channels of both inputs.
    With c = 128: 4 x (64*16 + 16*64) = 8,192 parameters per pair module.
    """

    def __init__(self, channels: int = 128, groups: int = 4, reduction: int = 4):
        super().__init__()
        if channels % groups:
            raise ValueError(f"CCIM: channels={channels} is not divisible by groups={groups}")
        self.group_channels = channels // groups
        self.units = nn.ModuleList(
            CollaborativeChannelAttentionUnit(self.group_channels, reduction) for _ in range(groups))

    def forward(self, hi: Tensor, lo: Tensor) -> tuple[Tensor, Tensor]:
        pairs = [unit(a, b) for unit, a, b in zip(self.units, hi.split(self.group_channels, 1),
                                                  lo.split(self.group_channels, 1))]
        return torch.cat([p[0] for p in pairs], 1), torch.cat([p[1] for p in pairs], 1)
