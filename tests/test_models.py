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


def test_reference_zoo_names_and_shapes():
    """vgg9, densenet121 and wrn56_k carry the reference implementation's parameter names and shapes."""
    vgg = create_model("vgg9").state_dict()
    convs = [0, 3, 7, 10, 14, 17, 20]  # conv/BN/ReLU triples with max-pools after the 2nd, 4th and 7th conv
    expect = []
    for i in convs:
        expect += [f"features.{i}.weight", f"features.{i}.bias"]
        expect += [f"features.{i + 1}.{k}" for k in ("weight", "bias", "running_mean", "running_var",
                                                      "num_batches_tracked")]
    expect += ["fc.0.weight", "fc.0.bias"] + [f"fc.1.{k}" for k in ("weight", "bias", "running_mean",
                                                                    "running_var", "num_batches_tracked")]
    expect += ["classifier.weight", "classifier.bias"]
    assert list(vgg) == expect
    assert tuple(vgg["fc.0.weight"].shape) == (256, 256 * 4 * 4) and tuple(vgg["classifier.weight"].shape) == (10, 256)
    dn = create_model("densenet121").state_dict()
    # 58 bottlenecks x (2 BN x 5 + 2 conv) + 3 transitions x (5 + 1) + stem + final BN + linear
    assert len(dn) == 58 * 12 + 3 * 6 + 1 + 5 + 2
    assert tuple(dn["dense1.0.conv1.weight"].shape) == (128, 64, 1, 1)
    assert tuple(dn["trans1.conv.weight"].shape) == (128, 256, 1, 1)
    assert tuple(dn["trans3.conv.weight"].shape) == (512, 1024, 1, 1)
    assert tuple(dn["linear.weight"].shape) == (10, 1024) and "dense4.15.conv2.weight" in dn
    for k in (2, 4, 8):
        w = create_model(f"wrn56_{k}").state_dict()
        assert tuple(w["conv1.weight"].shape) == (16 * k, 3, 3, 3)
        assert tuple(w["layer3.8.conv2.weight"].shape) == (64 * k, 64 * k, 3, 3)
        assert tuple(w["linear.weight"].shape) == (10, 64 * k)
        # the stem already has 16k channels: projections only where a stage changes the shape, as the reference
        assert "layer1.0.shortcut.0.weight" not in w and "layer2.0.shortcut.0.weight" in w
        plain = create_model(f"wrn56_{k}_noshort").state_dict()
        assert list(plain) == [n for n in w if "shortcut" not in n]


@pytest.mark.parametrize("name", ["vgg9", "densenet121", "wrn56_2", "wrn56_4_noshort", "resnet56", "plain56",
                                  "resnet18", "plain50"])
def test_detect_arch_from_keys_and_shapes(name):
    from landscape.models import detect_arch

    found, closest = detect_arch(create_model(name, in_channels=3).state_dict())
    assert found == canonical_name(name) and closest == [found]


def test_detect_torchvision_resnet_and_closest_for_others():
    from landscape.models import detect_arch

    assert detect_arch(torchvision.models.resnet18(num_classes=7).state_dict())[0] == "resnet18"
    sd = create_model("resnet20").state_dict()
    del sd["linear.bias"]
    found, closest = detect_arch(sd)
    assert found is None and closest[0] == "resnet20"
    assert detect_arch(torchvision.models.vgg11().state_dict())[0] is None


def test_register_model_as_call_and_decorator():
    from landscape.models import register_model

    class Tiny(torch.nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.fc = torch.nn.Linear(4, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1))

    register_model("tiny_test_net", Tiny, overwrite=True)
    m = create_model("Tiny_Test_Net", num_classes=3)
    assert isinstance(m, Tiny) and m.fc.out_features == 3 and m.arch == "tiny_test_net"

    @register_model("tiny_test_net2", overwrite=True)
    def build():
        return Tiny(5)

    assert create_model("tiny_test_net2").fc.out_features == 5 and callable(build)
    with pytest.raises(LandscapeError, match="already registered"):
        register_model("tiny_test_net", Tiny)
    with pytest.raises(LandscapeError, match="not an nn.Module"):
        register_model("tiny_bad", lambda: 3, overwrite=True)
        create_model("tiny_bad")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(LandscapeError) as e:
        create_model("VGGish")
    assert "did you mean vgg9" in str(e.value) and "--model" in str(e.value)
