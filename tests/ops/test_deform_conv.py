from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnattn.ops import DeformConv2d, deform_conv2d
from cnnattn.ops.deform_conv import default_impl

from helpers import assert_rel_close

CASES = {  # name: (B, C_in, C_out, H, W, k, stride, padding, dilation, groups, offset_groups, mask)
    "basic": (2, 8, 6, 9, 7, 3, 1, 1, 1, 1, 1, False),
    "stride2": (2, 8, 6, 11, 10, 3, 2, 1, 1, 1, 1, False),
    "dilation2": (2, 8, 6, 11, 9, 3, 1, 2, 2, 1, 1, True),
    "groups": (2, 8, 12, 8, 8, 3, 1, 1, 1, 4, 1, False),
    "offset_groups": (2, 8, 6, 8, 9, 3, 1, 1, 1, 1, 4, True),
    "groups_and_offset_groups": (3, 8, 8, 7, 12, 3, 2, 1, 1, 2, 2, True),
    "kernel1": (2, 8, 6, 6, 5, 1, 1, 0, 1, 1, 1, False),
    "kernel5": (2, 4, 6, 9, 13, 5, 1, 2, 1, 1, 2, True),
    "batch1": (1, 8, 6, 9, 7, 3, 1, 1, 1, 1, 1, True),
    "one_pixel": (2, 4, 4, 1, 1, 3, 1, 1, 1, 1, 1, False),
    "non_square_small_maps": (8, 16, 32, 3, 9, 3, 1, 1, 1, 1, 1, False),  # one-GEMM path (few pixels)
}


def _inputs(case: tuple, dtype: torch.dtype = torch.float32, offset_scale: float = 4.0) -> list[torch.Tensor | None]:
    b, cin, cout, h, w, k, s, p, d, g, og, with_mask = case
    h_out, w_out = ((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in (h, w))
    x = torch.randn(b, cin, h, w, dtype=dtype)
    # Offsets of several pixels: many taps sample outside the image.
    offset = torch.randn(b, 2 * og * k * k, h_out, w_out, dtype=dtype) * offset_scale
    weight = torch.randn(cout, cin // g, k, k, dtype=dtype)
    bias = torch.randn(cout, dtype=dtype)
    mask = torch.rand(b, og * k * k, h_out, w_out, dtype=dtype) if with_mask else None
    return [t.requires_grad_() if t is not None else None for t in (x, offset, weight, bias, mask)]


def _run(impl: str, case: tuple, tensors: list) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    x, offset, weight, bias, mask = tensors
    _, _, _, _, _, _, s, p, d, _, _, _ = case
    if impl == "reference":
        out = torchvision.ops.deform_conv2d(x, offset, weight, bias, s, p, d, mask)
    else:
        out = deform_conv2d(x, offset, weight, bias, s, p, d, mask, impl=impl)
    upstream = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad((out * upstream).sum(), [t for t in tensors if t is not None])
    return out, grads


@pytest.mark.parametrize("name", list(CASES))
def test_sampled_path_equals_torchvision_forward_and_gradients(name: str) -> None:
    tensors = _inputs(CASES[name])
    out, grads = _run("sampled", CASES[name], tensors)
    ref_out, ref_grads = _run("reference", CASES[name], tensors)
    assert_rel_close(out, ref_out, 1e-4, "output")
    labels = ["input", "offset", "weight", "bias", "mask"]
    for label, grad, ref in zip(labels, grads, ref_grads, strict=False):
        assert_rel_close(grad, ref, 1e-4, f"grad {label}")


def test_offsets_far_outside_give_bias_only() -> None:
    case = CASES["basic"]
    x, offset, weight, bias, _ = _inputs(case)
    with torch.no_grad():
        offset.fill_(1e3)
    out = deform_conv2d(x, offset, weight, bias, 1, 1, 1)
    torch.testing.assert_close(out, bias.view(1, -1, 1, 1).expand_as(out).detach())


@pytest.mark.parametrize("name", ["basic", "groups_and_offset_groups", "kernel1"])
def test_gradcheck_float64(name: str) -> None:
    _, cin, cout, h, w, k, s, p, d, g, og, with_mask = CASES[name]
    small = (1, cin, cout, min(h, 5), min(w, 5), k, s, p, d, g, og, with_mask)
    # Offsets away from integer positions, where bilinear sampling is differentiable.
    x, offset, weight, bias, mask = _inputs(small, torch.float64, offset_scale=1.0)
    with torch.no_grad():
        offset.copy_(offset.round() + 0.3)

    def fn(*args: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(*args[:4], s, p, d, args[4] if with_mask else None, impl="sampled")

    inputs = (x, offset, weight, bias) + ((mask,) if with_mask else ())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_chunked_inference_equals_single_pass() -> None:
    x, offset, weight, bias, mask = (t.detach() if t is not None else None for t in _inputs(CASES["batch1"]))
    x, offset, mask = x.repeat(5, 1, 1, 1), offset.repeat(5, 1, 1, 1), mask.repeat(5, 1, 1, 1)
    with torch.no_grad():
        full = deform_conv2d(x, offset, weight, bias, 1, 1, 1, mask)
        chunked = deform_conv2d(x, offset, weight, bias, 1, 1, 1, mask, max_chunk_bytes=1)
    torch.testing.assert_close(chunked, full)


def test_auto_uses_the_sampled_path_on_cpu() -> None:
    assert default_impl(torch.device("cpu")) == "sampled"
    assert default_impl(torch.device("cuda")) == "torchvision"


def test_module_matches_torchvision_module() -> None:
    ours = DeformConv2d(8, 16, 3, stride=2, padding=1, groups=2)
    ref = torchvision.ops.DeformConv2d(8, 16, 3, stride=2, padding=1, groups=2)
    ref.load_state_dict(ours.state_dict())
    x, offset = torch.randn(2, 8, 10, 10), torch.randn(2, 18, 5, 5) * 2
    torch.testing.assert_close(ours(x, offset), ref(x, offset), rtol=1e-4, atol=1e-4)
    assert "impl='auto'" in repr(ours)


def test_shape_errors_name_the_expected_shape() -> None:
    x, weight = torch.randn(2, 8, 9, 9), torch.randn(6, 8, 3, 3)
    with pytest.raises(ValueError, match=r"offset shape \(2, 18, 8, 8\), expected \(2, 18, 9, 9\)"):
        deform_conv2d(x, torch.randn(2, 18, 8, 8), weight, padding=1)
    with pytest.raises(ValueError, match="offset has 10 channels"):
        deform_conv2d(x, torch.randn(2, 10, 9, 9), weight, padding=1)
    with pytest.raises(ValueError, match=r"mask shape \(2, 3, 9, 9\), expected \(2, 9, 9, 9\)"):
        deform_conv2d(x, torch.randn(2, 18, 9, 9), weight, padding=1, mask=torch.randn(2, 3, 9, 9))
    with pytest.raises(ValueError, match="must be 4-D"):
        deform_conv2d(x[0], torch.randn(2, 18, 9, 9), weight, padding=1)
    with pytest.raises(ValueError, match="impl must be one of"):
        deform_conv2d(x, torch.randn(2, 18, 9, 9), weight, padding=1, impl="cuda")  # type: ignore[arg-type]


@st.composite
def deform_cases(draw) -> tuple:
    """(B, C_in, C_out, H, W, k, stride, padding, dilation, groups, offset_groups, mask): batch 0…4, maps 1…24."""
    groups, offset_groups = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    cin = draw(st.integers(1, 4)) * groups * offset_groups
    return (
        draw(st.integers(0, 4)), cin, draw(st.integers(1, 4)) * groups, draw(st.integers(1, 24)),
        draw(st.integers(1, 24)), draw(st.sampled_from([1, 3])), draw(st.integers(1, 2)), draw(st.integers(0, 2)),
        draw(st.integers(1, 2)), groups, offset_groups, draw(st.booleans()),
    )  # fmt: skip


@settings(max_examples=max(settings.default.max_examples, 20))
@given(case=deform_cases(), offset_kind=st.sampled_from(["fractional", "huge"]), seed=st.integers(0, 2**16))
def test_sampled_path_equals_torchvision_on_random_cases(case: tuple, offset_kind: str, seed: int) -> None:
    """Outputs and all gradients equal torchvision's (float64) for random shapes; offsets away from integer
    positions (where bilinear sampling has no gradient), or huge (every tap outside the image: the bias alone)."""
    _, _, _, h, w, k, s, p, d, _, _, _ = case
    h_out, w_out = ((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in (h, w))
    assume(h_out >= 1 and w_out >= 1)
    torch.manual_seed(seed)
    tensors = _inputs(case, torch.float64)
    with torch.no_grad():
        offset = tensors[1]
        whole = torch.randint(-3, 4, offset.shape, dtype=offset.dtype)
        fraction = torch.rand(offset.shape, dtype=offset.dtype) * 0.8 + 0.1
        offset.copy_(whole + fraction if offset_kind == "fractional" else torch.full_like(offset, 1e3))
    out, grads = _run("sampled", case, tensors)
    ref_out, ref_grads = _run("reference", case, tensors)
    torch.testing.assert_close(out, ref_out, rtol=1e-9, atol=1e-9)
    for grad, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad, ref, rtol=1e-9, atol=1e-9)
    if offset_kind == "huge":
        torch.testing.assert_close(out, tensors[3].detach().view(1, -1, 1, 1).expand_as(out))
