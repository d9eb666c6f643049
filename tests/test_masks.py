"""Masked convolutions: exact mask values, colour groups, and that the mask is really applied."""

from __future__ import annotations

import pytest
import torch

from pixelrnn_utils.masks import MaskedConv2d, colour_group, make_mask

# Centre tap, indexed [out colour, in colour]: A = a group sees strictly earlier groups,
# B = earlier groups and its own.
CENTRE_A = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.float)
CENTRE_B = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.float)


def _spatial(centre: float) -> torch.Tensor:
    """Expected 5x5 pattern for one (out, in) pair with the given centre value."""
    return torch.tensor(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 1, centre, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=torch.float,
    )


@pytest.mark.parametrize("mask_type, centre", [("A", CENTRE_A), ("B", CENTRE_B)])
def test_5x5_rgb_mask_values(mask_type, centre):
    mask = make_mask(3, 3, (5, 5), mask_type)
    assert mask.shape == (3, 3, 5, 5)
    for o in range(3):
        for i in range(3):
            assert torch.equal(mask[o, i], _spatial(centre[o, i].item())), (mask_type, o, i)
    assert torch.equal(mask[:, :, 2, 2], centre)


def test_mask_a_and_b_differ_only_on_the_diagonal_of_the_centre():
    a, b = make_mask(6, 9, (5, 5), "A"), make_mask(6, 9, (5, 5), "B")
    diff = (b - a).nonzero().tolist()
    # in channel k is group k // 2, out channel k is group k // 3: same group <-> differ
    expected = [[o, i, 2, 2] for o in range(9) for i in range(6) if o // 3 == i // 2]
    assert diff == expected


def test_grey_single_group():
    a = make_mask(4, 5, (3, 3), "A", colour_groups=1)
    b = make_mask(4, 5, (3, 3), "B", colour_groups=1)
    assert torch.equal(a[:, :, 1, 1], torch.zeros(5, 4))
    assert torch.equal(b[:, :, 1, 1], torch.ones(5, 4))
    assert torch.equal(a[:, :, 0], torch.ones(5, 4, 3))  # row above
    assert torch.equal(a[:, :, 1, 0], torch.ones(5, 4))  # left
    assert torch.equal(a[:, :, 1, 2], torch.zeros(5, 4))  # right
    assert torch.equal(a[:, :, 2], torch.zeros(5, 4, 3))  # row below


def test_colour_groups_not_divisible_by_three():
    groups = colour_group(64, 3)
    # contiguous blocks, channel k in group k * 3 // 64: the earlier groups take the extra channel
    assert torch.equal(groups, torch.arange(64) * 3 // 64)
    assert torch.bincount(groups).tolist() == [22, 21, 21]
    assert (groups.diff() >= 0).all(), "groups must be contiguous"
    assert torch.bincount(colour_group(16, 3)).tolist() == [6, 5, 5]
    assert colour_group(3, 3).tolist() == [0, 1, 2]  # the image: channel c is group c
    logits = colour_group(768, 3)
    assert logits[:256].eq(0).all() and logits[256:512].eq(1).all() and logits[512:].eq(2).all()


def test_mask_uses_uneven_groups():
    mask = make_mask(64, 64, (3, 3), "A")
    g = torch.arange(64) * 3 // 64
    assert torch.equal(mask[:, :, 1, 1], (g[None, :] < g[:, None]).float())


def test_out_blocks_repeat_grouping_per_block():
    groups = colour_group(24, 3, blocks=4)
    assert groups.tolist() == [0, 0, 1, 1, 2, 2] * 4
    groups = colour_group(16, 3, blocks=4)  # 4 per block: 2 R, 1 G, 1 B
    assert groups.tolist() == [0, 0, 1, 2] * 4
    mask = make_mask(3, 12, (1, 1), "B", out_blocks=4)[:, :, 0, 0]
    for block in range(4):
        assert torch.equal(mask[3 * block : 3 * block + 3], CENTRE_B)
    # without out_blocks the 12 outputs would be grouped 4/4/4 instead
    plain = make_mask(3, 12, (1, 1), "B")[:, :, 0, 0]
    assert not torch.equal(plain, mask)
    with pytest.raises(ValueError):
        colour_group(10, 3, blocks=4)
    with pytest.raises(ValueError):
        colour_group(8, 3, blocks=4)  # 2 channels per block cannot hold 3 groups


def test_rectangular_1x3_kernel():
    mask = make_mask(3, 3, (1, 3), "B")
    assert mask.shape == (3, 3, 1, 3)
    assert torch.equal(mask[:, :, 0, 0], torch.ones(3, 3))  # left neighbour
    assert torch.equal(mask[:, :, 0, 1], CENTRE_B)
    assert torch.equal(mask[:, :, 0, 2], torch.zeros(3, 3))  # right neighbour
    conv = MaskedConv2d(3, 6, (1, 3), "B")
    assert conv.padding == (0, 1)
    assert conv(torch.randn(2, 3, 4, 5)).shape == (2, 6, 4, 5)


@pytest.mark.parametrize("kernel", [4, (3, 2), (2, 3)])
def test_even_kernel_rejected(kernel):
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(3, 3, kernel, "A")


def test_bad_mask_type_rejected():
    with pytest.raises(ValueError, match="mask_type"):
        make_mask(3, 3, (3, 3), "C")


def test_mask_is_a_buffer_not_a_parameter():
    conv = MaskedConv2d(3, 6, 3, "A")
    assert "mask" in conv.state_dict()
    assert "mask" in dict(conv.named_buffers())
    assert "mask" not in dict(conv.named_parameters())
    assert all(p is not conv.mask for p in conv.parameters())
    assert torch.equal(conv.mask, make_mask(3, 6, (3, 3), "A"))
    restored = MaskedConv2d(3, 6, 3, "A")
    restored.load_state_dict(conv.state_dict())
    assert torch.equal(restored.mask, conv.mask)


def test_forward_uses_masked_weight():
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 6, 3, "A")
    x = torch.randn(2, 3, 5, 5)
    expected = torch.nn.functional.conv2d(x, conv.weight * conv.mask, conv.bias, padding=1)
    assert torch.allclose(conv(x), expected)
    before = conv(x)
    with torch.no_grad():
        conv.weight[:, :, 2, :] += 100.0  # row below: masked
        conv.weight[:, :, 1, 2] += 100.0  # right of centre: masked
        conv.weight[0, :, 1, 1] += 100.0  # centre, R output (mask A: sees nothing at the centre)
    assert torch.equal(conv(x), before)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] += 1.0  # visible tap: output must change
    assert not torch.allclose(conv(x), before)


def test_masked_gradient_is_zero():
    conv = MaskedConv2d(3, 6, 3, "B")
    conv(torch.randn(1, 3, 4, 4)).square().sum().backward()
    assert (conv.weight.grad[conv.mask == 0] == 0).all()
    assert (conv.weight.grad[conv.mask == 1] != 0).any()
