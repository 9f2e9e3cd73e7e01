import pytest
import torch
import torchvision

from landscape.errors import LandscapeError
from landscape.models import canonical_name, create_model, list_models


def test_registry_lists_every_family_member():
    names = list_models()
    for d in (20, 32, 44, 56, 110, 18, 34, 50, 101, 152):
        assert f"resnet{d}" in names and f"plain{d}" in names and f"resnet{d}_noshort" in names
    assert names == sorted(names)


def test_unknown_name_lists_valid_names():
    with pytest.raises(LandscapeError) as e:
        create_model("resnet57")
    assert "resnet57" in str(e.value) and "resnet56, resnet56_noshort" in str(e.value)


def test_cifar_parameter_names_match_reference():
    keys = list(create_model("resnet56").state_dict())
    params = [k for k in keys if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert params[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer1.8.conv2.weight" in keys and "layer3.8.bn2.bias" in keys and "layer1.9.conv1.weight" not in keys
    assert sorted({k.rsplit(".", 2)[0] for k in keys if "shortcut" in k}) == ["layer2.0.shortcut", "layer3.0.shortcut"]
    assert params[-2:] == ["linear.weight", "linear.bias"]
    plain = list(create_model("resnet56_noshort").state_dict())
    assert plain == [k for k in keys if "shortcut" not in k]
    # 6n+2 layers with weights: conv1 + 6n convs + linear (shortcut projections not counted, as in He et al.)
    convs = [k for k in plain if k.endswith("weight") and ("conv" in k or "linear" in k)]
    assert len(convs) == 56


@pytest.mark.parametrize("depth", [18, 50])
def test_imagenet_family_loads_torchvision_weights(depth):
    ours = create_model(f"resnet{depth}", num_classes=1000)
    tv = getattr(torchvision.models, f"resnet{depth}")()
    assert list(ours.state_dict()) == list(tv.state_dict())
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(2, 3, 64, 64)
    ours.eval(), tv.eval()
    with torch.no_grad():
        assert torch.equal(ours(x), tv(x))


def test_plain_imagenet_has_no_downsample_and_same_other_names():
    r, p = create_model("resnet50").state_dict(), create_model("plain50").state_dict()
    assert list(p) == [k for k in r if "downsample" not in k]


def test_shapes_and_aliases():
    m = create_model("plain20", num_classes=7, in_channels=1)
    assert m(torch.randn(3, 1, 8, 8)).shape == (3, 7)
    assert create_model("resnet110")(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert canonical_name("ResNet56_noshort") == "plain56" and canonical_name("resnet56") == "resnet56"


def test_skip_connection_changes_the_function():
    torch.manual_seed(0)
    r = create_model("resnet20").eval()
    p = create_model("plain20").eval()
    p.load_state_dict({k: v for k, v in r.state_dict().items() if "shortcut" not in k})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(r(x), p(x))
