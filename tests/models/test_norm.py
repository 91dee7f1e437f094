"""freeze_batch_norm: running statistics only, no gradient to affine parameters, hooks and keys kept."""

from __future__ import annotations

import copy
import pickle

import torch

from cnnattn import create_model
from cnnattn.models.norm import FrozenBatchNorm2d, freeze_batch_norm


def test_frozen_model_keeps_attention_hooks_keys_and_statistics() -> None:
    model = create_model("resnet18_se", num_classes=4)
    keys = list(model.state_dict())
    freeze_batch_norm(model).train()
    assert list(model.state_dict()) == keys
    assert all(not m.training for m in model.modules() if isinstance(m, FrozenBatchNorm2d))
    before = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert torch.equal(model.bn1.running_mean, before) and model.bn1.weight.grad is None
    assert model.layer1[0].attn.fc1.weight.grad is not None  # the SE gate (run by a hook) still trains
    copy.deepcopy(model)
    pickle.dumps(model)


def test_frozen_norm_equals_eval_mode_norm() -> None:
    norm = torch.nn.BatchNorm2d(3)
    norm.running_mean.uniform_()
    norm.running_var.uniform_(0.5, 2)
    x = torch.randn(4, 3, 5, 5)
    expected = norm.eval()(x)
    frozen = freeze_batch_norm(torch.nn.Sequential(copy.deepcopy(norm))).train()
    torch.testing.assert_close(frozen(x), expected)


def test_timm_batchnorm_act_is_frozen_with_its_activation() -> None:
    import timm
    from timm.layers import BatchNormAct2d

    from cnnattn.models.norm import FrozenBatchNormAct2d

    model = timm.create_model("efficientnet_b0", num_classes=3)
    norms = [m for m in model.modules() if isinstance(m, BatchNormAct2d)]
    x = torch.randn(2, 3, 32, 32)
    expected = copy.deepcopy(model).eval()(x)
    freeze_batch_norm(model).train()
    assert len(norms) == 49 and all(type(m) is FrozenBatchNormAct2d and not m.training for m in norms)
    torch.testing.assert_close(model(x), expected)  # the activation each norm carries still runs
    assert all(p.grad is None and not p.requires_grad for m in norms for p in m.parameters())
