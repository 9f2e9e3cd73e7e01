"""Multiply-add and traffic counts of landscape.cost, against hand counts and published figures."""

import pytest
import torch.nn as nn
import torch.nn.functional as F

from landscape.cost import model_cost
from landscape.errors import LandscapeError
from landscape.models import create_model


class Tiny(nn.Module):
    """conv(1->2, 3x3) -> BN -> ReLU (+ the input, when residual) -> flatten -> linear(32->3), on 1x4x4."""

    def __init__(self, residual: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(32, 3)
        self.residual = residual

    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        if self.residual:
            out = out + x  # broadcasts the 16-element input over both channels
        return self.fc(out.flatten(1))


def test_hand_counted_model():
    c = model_cost(Tiny(), (1, 4, 4))
    # conv: 32 outputs x 9 taps; linear: 3 outputs x 32 inputs.
    assert c.macs == 32 * 9 + 3 * 32
    assert c.weights == 18 + 4 * 2 + 96
    # eager: conv 16 in + 32 out, BN 32 + 32, ReLU 32 + 32, flatten nothing, linear 32 + 3.
    assert c.activation_elements("eager") == 48 + 64 + 64 + 35
    assert c.activation_elements("folded") == 48 + 64 + 35
    assert c.activation_elements("fused") == 48 + 35
    assert c.bytes_per_image("eager", 2, batch_size=2) == (211 + 122 / 2) * 2


def test_residual_addition_reads_its_extra_operand_when_fused():
    c = model_cost(Tiny(residual=True), (1, 4, 4))
    # the addition: reads out (32) and x (16), writes 32; fused it reads only x.
    assert c.activation_elements("eager") == 211 + 80
    assert c.activation_elements("fused") == 83 + 16


def test_published_multiply_adds():
    # ResNet-56 at 32x32: 125.7 M (the GPU-engine issue); torchvision's ResNet-50/18: 4.09 / 1.81 GMACs at 224.
    assert model_cost(create_model("resnet56"), (3, 32, 32)).macs == 125_747_840
    assert model_cost(create_model("resnet50"), (3, 224, 224)).macs == 4_087_156_736
    assert model_cost(create_model("resnet18"), (3, 224, 224)).macs == 1_813_566_464


def test_plain_net_moves_fewer_bytes_than_its_resnet():
    r = model_cost(create_model("resnet20"), (3, 32, 32))
    p = model_cost(create_model("plain20"), (3, 32, 32))
    assert p.activation_elements("eager") < r.activation_elements("eager")
    assert r.activation_elements("fused") < r.activation_elements("folded") < r.activation_elements("eager")


def test_model_left_in_its_mode_and_unknown_mode_refused():
    m = create_model("resnet20").train()
    c = model_cost(m, (3, 32, 32))
    assert m.training
    with pytest.raises(LandscapeError, match="valid: eager, folded, fused"):
        c.activation_elements("compiled")


def test_untraceable_model_is_a_clear_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(LandscapeError, match="cannot trace Branchy"):
        model_cost(Branchy(), (1, 2, 2))
