from __future__ import annotations

import torch
from torch import nn

from cnnattn.attention import TripletAttention, ZPool, create_attention


def test_zpool_is_max_and_mean_over_dim1() -> None:
    x = torch.randn(2, 5, 3, 4)
    out = ZPool()(x)
    torch.testing.assert_close(out[:, 0], x.amax(1))
    torch.testing.assert_close(out[:, 1], x.mean(1))


def test_output_is_mean_of_three_rotated_branches() -> None:
    attn = TripletAttention(16).eval()
    x = torch.randn(2, 16, 6, 9)
    cw = attn.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)  # pooled over H, gates (C, W)
    hc = attn.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)  # pooled over W, gates (H, C)
    hw = attn.hw(x)  # pooled over C, gates (H, W)
    torch.testing.assert_close(attn(x), (cw + hc + hw) / 3)
    assert attn.cw.gate(x.permute(0, 2, 1, 3)).shape == (2, 1, 16, 9)
    assert attn.hc.gate(x.permute(0, 3, 2, 1)).shape == (2, 1, 6, 16)


def test_branch_structure_7x7_conv_two_to_one_channel() -> None:
    attn = TripletAttention(64)
    convs = [m for m in attn.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3
    assert all((c.in_channels, c.out_channels, c.kernel_size, c.padding) == (2, 1, (7, 7), (3, 3)) for c in convs)


def test_no_spatial_averages_two_branches() -> None:
    attn = TripletAttention(8, no_spatial=True).eval()
    x = torch.randn(1, 8, 5, 5)
    cw = attn.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
    hc = attn.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
    assert attn.hw is None
    torch.testing.assert_close(attn(x), (cw + hc) / 2)


def test_gate_in_unit_interval_and_params_independent_of_channels() -> None:
    x = torch.rand(2, 32, 8, 8) + 0.1
    ratio = TripletAttention(32)(x) / x
    assert ratio.min() > 0 and ratio.max() < 1
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_attention("triplet", 64)) == count(create_attention("triplet", 2048)) == 3 * (98 + 2)


def test_trains_at_batch_one() -> None:
    attn = TripletAttention(8).train()
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    attn(x).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in attn.parameters())


def _reference(attn: TripletAttention, x: torch.Tensor) -> torch.Tensor:
    """The paper's formulation: each branch on a rotated copy of X, rotated back, the three outputs averaged."""
    branches = [attn.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3), attn.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)]
    if attn.hw is not None:
        branches.append(attn.hw(x))
    return sum(branches[1:], branches[0]) / len(branches)


def test_fast_path_equals_the_rotated_formulation_in_outputs_and_gradients() -> None:
    for no_spatial in (False, True):
        torch.manual_seed(0)
        attn = TripletAttention(12, no_spatial=no_spatial).double().train()
        for p in attn.parameters():  # non-trivial weights: BN affine away from (1, 0)
            torch.nn.init.normal_(p, std=0.5)
        x = torch.randn(3, 12, 7, 10, dtype=torch.float64, requires_grad=True)
        reference_attn = TripletAttention(12, no_spatial=no_spatial).double().train()
        reference_attn.load_state_dict(attn.state_dict())
        grad = torch.randn(3, 12, 7, 10, dtype=torch.float64)
        out = attn(x)
        (dx,) = torch.autograd.grad(out, x, grad, retain_graph=True)
        expected = _reference(reference_attn, x)
        (ex,) = torch.autograd.grad(expected, x, grad, retain_graph=True)
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(dx, ex)
        grads = torch.autograd.grad(out, list(attn.parameters()), grad)
        expected_grads = torch.autograd.grad(expected, list(reference_attn.parameters()), grad)
        for p, q in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(p, q)
        assert out.is_contiguous() and attn(x.to(memory_format=torch.channels_last)).shape == x.shape


def _graph_nodes(tensor: torch.Tensor) -> set[str]:
    """Names of the autograd nodes that produced ``tensor``."""
    seen, todo, names = set(), [tensor.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return names


def test_training_pools_with_one_backward_and_equals_the_rotated_formulation_channels_last() -> None:
    torch.manual_seed(0)
    attn = TripletAttention(12).double().train()
    reference_attn = TripletAttention(12).double().train()
    reference_attn.load_state_dict(attn.state_dict())
    x = torch.randn(2, 12, 6, 9, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    out, expected = attn(x), _reference(reference_attn, x)
    assert "_ZPoolsBackward" in _graph_nodes(out) and "_ZPoolsBackward" not in _graph_nodes(expected)
    grad = torch.randn_like(out)
    (dx,) = torch.autograd.grad(out, x, grad)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(dx, torch.autograd.grad(expected, x, grad)[0])
    assert dx.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert "_ZPoolsBackward" not in _graph_nodes(attn(x)) and attn(x).grad_fn is None
