"""Low precision and non-finite inputs: the precision policy of docs/reliability.md.

* Under bf16 and fp16 autocast, no module overflows or turns NaN for activations up to ±1e4 (fp16 runs on CPU
  here, as torch's CPU autocast supports it; on a GPU the same test runs on CUDA).
* Attention logits run in float32 under autocast (AA's; timm's non-local block as a whole): in fp16 they overflow.
* EAM with tiny and huge radii stays finite and its maps stay distributions.
* NaN and Inf inputs propagate and never crash; in eval mode they stay in their own sample.
"""

from __future__ import annotations

import pytest
import torch

from cnnattn.attention import create_attention, list_attention

NAMES = [info.name for info in list_attention()]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _module(name: str, channels: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    kind = next(i.kind for i in list_attention() if i.name == name)
    module = create_attention(name, *((channels, channels) if kind == "conv" else (channels,))).eval()
    with torch.no_grad():  # non-zero branches (AW, AA and EAM start at zero) and sharp attention
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return module


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_autocast_stays_finite_for_activations_up_to_1e4(name: str, dtype: torch.dtype, device: str) -> None:
    module = _module(name).to(device)
    for scale in (1.0, 1e2, 1e4):
        x = torch.randn(2, 16, 12, 10, device=device) * scale
        with torch.no_grad(), torch.autocast(device, dtype=dtype):
            y = module(x)
        assert torch.isfinite(y).all(), f"{name}: non-finite output under {dtype} autocast at scale {scale:g}"


@pytest.mark.parametrize("name", ["aa", "nl"])
def test_attention_logits_run_in_float32_under_autocast(name: str) -> None:
    """Activations of 1e3: float16 logits would overflow (inf - inf = NaN in the softmax); in float32 they do not,
    and the output stays close to the float32 module's."""
    module = _module(name)
    x = torch.randn(2, 16, 12, 10) * 1e3
    with torch.no_grad():
        reference = module(x)
        with torch.autocast("cpu", dtype=torch.float16):
            y = module(x)
    assert torch.isfinite(y).all()
    assert ((y.float() - reference).norm() / reference.norm()) < 0.1


@pytest.mark.parametrize("radius", [1e-3, 1e3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_eam_with_tiny_and_huge_radii_stays_finite(radius: float, dtype: torch.dtype) -> None:
    module = _module("eam")
    with torch.no_grad():
        module.log_radius.fill_(torch.log(torch.tensor(radius)).item())
    x = torch.randn(2, 16, 9, 11) * 1e2
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        y = module(x)
        rows = module.attention_map(x)
    assert torch.isfinite(y).all() and torch.isfinite(rows).all()
    torch.testing.assert_close(rows.float().sum(-1), torch.ones(rows.shape[:-1]), atol=1e-2, rtol=0)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_inputs_propagate_and_never_crash(name: str, value: float) -> None:
    """A NaN or Inf in sample 0 gives a non-finite output there (it is not hidden), raises nothing, and leaves
    sample 1 exactly as it is alone (eval mode)."""
    module = _module(name)
    x = torch.randn(2, 16, 12, 10)
    x[0, 3, 4, 5] = value
    with torch.no_grad():
        y = module(x)
        alone = module(x[1:])
    assert not torch.isfinite(y[0]).all()
    torch.testing.assert_close(y[1:], alone)
