"""BatchNorm folding (landscape.fold): same outputs as the unfolded network, for one or K stacked parameter sets."""

import pytest
import torch
import torch.nn as nn

from conftest import make_model
from landscape.errors import LandscapeError
from landscape.fold import fold_batchnorm, named_tensors


@pytest.mark.parametrize("arch,size,pairs", [("resnet20", 8, 21), ("plain20", 8, 19), ("resnet18", 32, 20)])
def test_folded_network_equals_the_original(arch, size, pairs):
    model = make_model(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = fold_batchnorm(model)
    assert len(net.pairs) == pairs  # every conv -> BN, the 1x1 projections included
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.module.modules())
    x = torch.randn(5, 1, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, got = model(x), net.module(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_folding_follows_perturbed_weights_and_statistics():
    model = make_model("resnet20")
    net = fold_batchnorm(model)
    with torch.no_grad():
        model.layer1[0].conv1.weight.mul_(1.7)
        model.layer2[0].bn2.running_var.mul_(3.0)
        model.layer3[2].bn1.weight.add_(0.4)
        model.linear.bias.add_(1.0)
    net.load_from(model)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net.module(x), model(x), rtol=1e-5, atol=1e-5)


def test_stacked_parameter_sets_fold_per_set():
    """A leading K dimension on some tensors (the batched engine's stacks) folds each set as if alone."""
    model = make_model("resnet20")
    net = fold_batchnorm(model)
    state = named_tensors(model)
    g = torch.Generator().manual_seed(2)
    stacked = {"conv1.weight": torch.stack([state["conv1.weight"] * s for s in (1.0, 0.5, 2.0)]),
               "bn1.running_mean": torch.stack([state["bn1.running_mean"] + torch.randn(16, generator=g)
                                                for _ in range(3)])}
    folded = net.parameters_from({**state, **stacked})
    assert folded["conv1.weight"].shape == (3, 16, 1, 3, 3) and folded["conv1.bias"].shape == (3, 16)
    assert folded["layer1.0.conv1.weight"].shape == (16, 16, 3, 3)  # nothing stacked there: stays single
    for k in range(3):
        single = net.parameters_from({**state, **{n: t[k] for n, t in stacked.items()}})
        torch.testing.assert_close(folded["conv1.weight"][k], single["conv1.weight"], rtol=0, atol=0)
        torch.testing.assert_close(folded["conv1.bias"][k], single["conv1.bias"], rtol=0, atol=0)


def test_conv_bias_and_affine_free_bn():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, bias=True)
            self.bn = nn.BatchNorm2d(3, affine=False)

        def forward(self, x):
            return self.bn(self.conv(x))

    m = Net().eval()
    with torch.no_grad():
        m.bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        m.bn.running_var.copy_(torch.tensor([0.25, 4.0, 1.0]))
    x = torch.randn(2, 2, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(m).module(x), m(x), rtol=1e-6, atol=1e-6)


def test_nothing_to_fold_or_untraceable_is_a_clear_error():
    with pytest.raises(LandscapeError, match="no convolution followed by BatchNorm"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(LandscapeError, match="not traceable"):
        fold_batchnorm(Branchy())
