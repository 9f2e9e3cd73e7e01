"""Every setting is declared once, in landscape.settings; the CLI and the file derive from it."""

import dataclasses

import pytest

from landscape.errors import LandscapeError
from landscape.plot import build_parser
from landscape.settings import (IDENTITY_ATTRS, SHOWN_ATTRS, Config, Provenance, from_namespace, make_config,
                                recorded)


def test_every_config_field_is_a_cli_flag_with_its_default():
    parser = build_parser()
    ns = parser.parse_args(["--ckpt", "m.pt"])
    for f in dataclasses.fields(Config):
        assert getattr(ns, f.name) == f.default, f.name
    assert from_namespace(ns) == Config()
    ns = parser.parse_args(["--ckpt", "m.pt", "--1d", "--no-fold-bn", "--loss", "mse", "--quiet", "--no-render",
                            "--x", "-2:2:5"])
    cfg = from_namespace(ns)
    assert (cfg.one_d, cfg.fold_bn, cfg.loss, cfg.progress, cfg.render, cfg.x) == (True, False, "mse", False, False,
                                                                                   "-2:2:5")


def test_choices_and_names_are_checked_for_python_callers_too():
    with pytest.raises(LandscapeError, match="unknown precision 'fp16'; valid: fp32, tf32, bf16"):
        Config(precision="fp16")
    with pytest.raises(LandscapeError, match="unknown setting.*precison"):
        make_config(precison="bf16")
    with pytest.raises(LandscapeError, match="samples must be a positive integer"):
        Config(samples=0)


def test_the_file_records_what_the_fields_say():
    attrs = recorded(Config(bn="recompute", seed=7), Provenance(arch="resnet20", n_samples=5))
    assert attrs["bn_mode"] == "recompute" and attrs["seed"] == 7 and attrs["n_samples"] == 5
    assert "batch_size" not in attrs and "out" not in attrs  # how a surface is computed is not what it is
    assert set(IDENTITY_ATTRS) == {"arch", "ckpt_sha256", "dataset", "n_samples", "directions", "split", "norm",
                                   "ignore", "dir_type", "seed", "loss", "precision", "bn_mode", "eigen",
                                   "normalization", "tolerance", "rtol", "min_samples", "seq_len", "params", "refine"}
    assert "torch_version" in SHOWN_ATTRS and "ckpt_sha256" not in SHOWN_ATTRS


@pytest.mark.parametrize("command", ["plot", "render.__main__", "connect.__main__", "hessian.__main__", "train",
                                     "report"])
def test_every_command_prints_its_help(command, capsys):
    """``--help`` of every command: argparse formats help strings, so a bare '%' in a setting's text ('down to
    1 %') made ``python -m landscape.connect --help`` crash. (In process: each command's ``main``.)"""
    import importlib

    with pytest.raises(SystemExit) as done:
        importlib.import_module(f"landscape.{command}").main(["--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: python -m landscape.")
    if command == "connect.__main__":
        assert "then down to 1 %)" in out
    if command == "plot":
        assert "95 % interval" in out
