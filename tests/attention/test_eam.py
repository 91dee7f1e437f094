from __future__ import annotations

import itertools
import math

import pytest
import torch

import cnnattn
from cnnattn.attention import ExplicitAttentionConv2d, get_attention_info

from helpers import assert_rel_close, assert_trains

SIZES = [(7, 7), (8, 8), (6, 11), (12, 5)]  # odd, even, non-square both ways


def _pair(distance_fn: str, radius: float, stride: int = 1, **kwargs: object) -> tuple:
    torch.manual_seed(0)
    separable = ExplicitAttentionConv2d(8, 40, 3, stride, distance_fn=distance_fn, init_radius=radius, **kwargs)
    dense = ExplicitAttentionConv2d(
        8, 40, 3, stride, distance_fn=distance_fn, init_radius=radius, impl="dense", **kwargs
    )
    dense.load_state_dict(separable.state_dict())
    return separable, dense


@pytest.mark.parametrize(
    ("kernel", "size", "radius", "stride"),
    list(itertools.product(("gaussian", "laplacian", "box"), SIZES, (0.3, 2.0, 50.0), (1, 2))),
)
def test_separable_equals_dense(kernel: str, size: tuple[int, int], radius: float, stride: int) -> None:
    separable, dense = _pair(kernel, radius, stride)
    x = torch.randn(2, 8, *size)
    out, ref = separable(x), dense(x)
    assert torch.isfinite(out).all() and torch.isfinite(ref).all()
    assert out.shape == (2, 40, -(-size[0] // stride), -(-size[1] // stride))
    assert_rel_close(out, ref, 1e-5, f"{kernel} {size} σ={radius}")


@pytest.mark.parametrize("kernel", ["gaussian", "laplacian", "box"])
@pytest.mark.parametrize("radius", [0.3, 50.0])
def test_gradients_agree_radius_learns_and_stays_positive(kernel: str, radius: float) -> None:
    separable, dense = _pair(kernel, radius, num_heads=2, per_head_radius=True)
    x = torch.randn(2, 8, 9, 6)
    grads = [torch.autograd.grad(m(x).square().sum(), list(m.parameters())) for m in (separable, dense)]
    for (name, _), g, r in zip(separable.named_parameters(), *grads, strict=True):
        assert torch.isfinite(g).all(), name
        assert_rel_close(g, r, 1e-4, name)
    radius_grad = dict(zip([n for n, _ in separable.named_parameters()], grads[0], strict=True))["log_radius"]
    if radius == 0.3 or kernel != "box":  # a box wider than the map has no edge inside it: zero gradient
        assert radius_grad.abs().sum() > 0
    with torch.no_grad():
        separable.log_radius -= 1e3 * radius_grad.sign()
    assert (separable.radius > 0).all() and torch.isfinite(separable(x)).all()


def test_gaussian_map_is_the_softmax_of_squared_distances() -> None:
    layer = ExplicitAttentionConv2d(8, 40, init_radius=1.5)
    a = layer.dense_map(3, 4, torch.device("cpu"), torch.float64)[0].detach()
    positions = [(y, x) for y in range(3) for x in range(4)]
    for i, p in enumerate(positions):
        weights = torch.tensor(
            [math.exp(-((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2) / (2 * 1.5**2)) for q in positions],
            dtype=torch.float64,
        )
        torch.testing.assert_close(a[i], weights / weights.sum())


def test_box_is_a_uniform_average_inside_linf_radius() -> None:
    layer = ExplicitAttentionConv2d(8, 40, distance_fn="box", init_radius=1.0, box_temperature=1e-3)
    a = layer.dense_map(5, 5, torch.device("cpu"), torch.float64)[0].view(5, 5, 5, 5).detach()
    centre = a[2, 2]
    torch.testing.assert_close(centre[1:4, 1:4], torch.full((3, 3), 1 / 9, dtype=torch.float64))
    assert centre.sum() == pytest.approx(1.0) and centre[0].abs().max() < 1e-12


def test_per_head_radii_and_value_heads() -> None:
    layer = ExplicitAttentionConv2d(16, 80, num_heads=4, per_head_radius=True, init_radius=1.0)
    assert layer.d_v == 8 and layer.radius.shape == (4,)
    with torch.no_grad():
        layer.log_radius.copy_(torch.tensor([0.1, 1.0, 2.0, 3.0]).log())
    a_y, _ = layer.axis_maps(6, 6, torch.device("cpu"), torch.float32)
    assert a_y.shape == (4, 6, 6) and a_y[0].diagonal().min() > a_y[3].diagonal().max()


def test_executed_and_dense_equivalent_macs_by_hand() -> None:
    layer = ExplicitAttentionConv2d(16, 40, 3, 1)  # d_v = 4, conv 36 channels
    result = cnnattn.profile(layer, (16, 10, 12))
    pixels = 10 * 12
    base = 36 * 16 * 9 * pixels + 4 * 16 * pixels + 4 * 4 * pixels
    separable = 4 * (10 * 10 * 12 + 10 * 12 * 12)  # A_y·V then ·A_xᵀ
    assert result.macs == base + separable
    assert result.dense_macs == base + 4 * pixels * pixels


def test_registry_models_and_training() -> None:
    info = get_attention_info("eam")
    assert (info.kind, info.position, info.stages, info.grouped) == ("conv", "conv", (2, 3, 4), False)
    assert "mobilenetv2_eam" not in cnnattn.list_models()
    model = cnnattn.create_model("resnet18_eam", num_classes=4)
    assert isinstance(model.layer2[0].conv1, ExplicitAttentionConv2d) and not isinstance(
        model.layer1[0].conv1, ExplicitAttentionConv2d
    )
    assert len(model.cnnattn_placements[0].modules) == 12  # two 3×3 convs × 2 blocks × stages 2-4
    assert_trains(model)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="distance_fn must be one of"):
        ExplicitAttentionConv2d(8, 40, distance_fn="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init_radius must be > 0"):
        ExplicitAttentionConv2d(8, 40, init_radius=0)
    with pytest.raises(ValueError, match="odd kernel_size"):
        ExplicitAttentionConv2d(8, 40, kernel_size=2)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 8, H, W\)"):
        ExplicitAttentionConv2d(8, 40)(torch.randn(1, 4, 5, 5))
