"""The evaluator's fallbacks and its promise to leave the caller's model alone."""

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from landscape.data import Data
from landscape.directions import make_directions
from landscape.evaluate import PlaneEvaluator


class ChannelsLastQuery(nn.Module):
    """Asks what cuDNN's batch norm asks of a channels_last-strided input (an H100 showed that ``vmap`` cannot
    answer it: ``NYI: querying is_contiguous inside of vmap for memory_format other than contiguous_format``)."""

    def forward(self, x):
        if x.dim() == 4 and x.stride(1) == 1 and x.shape[1] > 1:
            x.is_contiguous(memory_format=torch.channels_last)
        return x


class ItemInForward(nn.Module):
    """Data-dependent Python control flow: no layout makes this vmap-able."""

    def forward(self, x):
        return x * 2 if float(x.mean()) > -1e9 else x


def _net(extra: nn.Module, in_channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), extra, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10)).eval()


COORDS = [(0.3, -0.2), (0.0, 0.0), (-0.5, 0.5)]


def test_vmap_layout_failure_retries_in_nchw_with_the_same_numbers():
    g = torch.Generator().manual_seed(0)
    # three channels: with one, channels_last and NCHW strides coincide and nothing would be queried
    data = Data(torch.randn(96, 3, 8, 8, generator=g), torch.randint(0, 10, (96,), generator=g), "t", "train", 10)
    net = _net(ChannelsLastQuery(), in_channels=3)
    xdir, ydir = make_directions(net, seed=2)
    ref = PlaneEvaluator(net, data, xdir, ydir, batch_size=64).evaluate(COORDS)
    ev = PlaneEvaluator(net, data, xdir, ydir, batch_size=64, points_per_step=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the layout step is silent: same engine, same speed class
        got = ev.evaluate(COORDS)
    assert ev.points_per_step == 3 and ev._memory_format == torch.contiguous_format  # still batched, now NCHW
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)
    assert got[1] == ref[1]


def test_model_vmap_cannot_run_falls_back_to_the_loop_with_a_warning(digits_small):
    net = _net(ItemInForward())
    xdir, ydir = make_directions(net, seed=3)
    ref = PlaneEvaluator(net, digits_small, xdir, ydir, batch_size=64).evaluate(COORDS)
    ev = PlaneEvaluator(net, digits_small, xdir, ydir, batch_size=64, points_per_step=3)
    with pytest.warns(RuntimeWarning, match="one point at a time"):
        got = ev.evaluate(COORDS)
    assert ev.points_per_step == 1
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)
    assert ref[0][0] != ref[0][2]


def test_loop_engine_errors_still_reach_the_caller(digits_small):
    class Boom(nn.Module):
        calls = 0

        def forward(self, x):
            Boom.calls += 1
            if Boom.calls > 1:  # the probe passes, the first real point fails
                raise ValueError("user bug")
            return x

    net = _net(Boom())
    xdir, ydir = make_directions(net)
    with pytest.raises(ValueError, match="user bug"):
        PlaneEvaluator(net, digits_small, xdir, ydir).evaluate(COORDS)


@pytest.mark.parametrize("points_per_step,fold_bn,bn_mode", [(1, False, "eval"), (3, True, "recompute")])
def test_the_callers_model_is_left_exactly_as_it_came_in(model, digits_small, points_per_step, fold_bn, bn_mode):
    model.train()  # a notebook's model may be in training mode, NCHW, on its device
    before = copy.deepcopy(model.state_dict())
    xdir, ydir = make_directions(model)
    ev = PlaneEvaluator(model, digits_small, xdir, ydir, points_per_step=points_per_step, fold_bn=fold_bn,
                        bn_mode=bn_mode)
    ev.evaluate(COORDS)
    assert model.training
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
        assert v.is_contiguous(), k  # not channels_last
        assert v.device.type == "cpu"
    assert ev.model is not model
