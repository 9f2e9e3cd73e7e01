"""Input normalization as a choice (``--normalization``): what the model saw in training decides its inputs.

* ``default``: the checkpoint's recorded normalization (ours record it), else the data set's customary one for
  the built-in architectures (the reference's checkpoints among them); for a network of the user's own (from
  Python, or ``--model``) that records none it is an error, unless the data set's is the identity: it may
  have been trained on raw or normalized pixels, and guessing wrong gives a plausible but wrong surface;
* ``dataset``: the data set's customary normalization;
* ``reference``: the reference implementation's CIFAR constants, with which its published checkpoints were
  trained: mean (125.3, 123.0, 113.9)/255, std (63.0, 62.1, 66.7)/255;
* ``none``: raw pixels in [0, 1];
* ``MEAN/STD``: comma-separated per-channel values, e.g. ``0.5,0.5,0.5/0.5,0.5,0.5`` (one value is broadcast).
"""

from __future__ import annotations

from landscape.errors import LandscapeError

REFERENCE_MEAN = tuple(v / 255.0 for v in (125.3, 123.0, 113.9))
REFERENCE_STD = tuple(v / 255.0 for v in (63.0, 62.1, 66.7))
CHOICES = ("default", "dataset", "reference", "none")
HELP = "default | dataset | reference | none | MEAN/STD (e.g. 0.5,0.5,0.5/0.5,0.5,0.5)"


def resolve_normalization(choice: str, channels: int, default: tuple[tuple, tuple],
                          recorded: dict | None = None) -> tuple[tuple, tuple]:
    """``(mean, std)`` per channel for ``choice``.

    Args:
        choice: see the module docstring.
        channels: the images' channel count (the result has one value per channel).
        default: the data set's customary ``(mean, std)``.
        recorded: a checkpoint's recorded ``{"mean": [...], "std": [...]}`` (used by ``default``); ``{}``: the
            model is the user's own and records none (``default`` is then an error).

    Raises:
        LandscapeError: an unknown word, malformed numbers, a zero std, or a channel count that does not match.
    """
    choice = str(choice).strip()
    if choice == "default":
        if recorded and len(recorded.get("mean", ())) == channels and len(recorded.get("std", ())) == channels:
            mean, std = tuple(recorded["mean"]), tuple(recorded["std"])
        elif recorded is not None and not recorded and not _identity(*default):
            raise LandscapeError("your model records no input normalization, so which inputs it was trained on is "
                                 "unknown; pass normalization='dataset' (--normalization dataset: the data set's "
                                 f"usual {describe(*default)}), 'none' (raw pixels in [0, 1]) or MEAN/STD")
        else:
            mean, std = default
    elif choice == "dataset":
        mean, std = default
    elif choice == "reference":
        if channels != 3:
            raise LandscapeError(f"--normalization reference is for 3-channel CIFAR images; these have {channels} "
                                 "channels; use default, none or MEAN/STD")
        mean, std = REFERENCE_MEAN, REFERENCE_STD
    elif choice == "none":
        mean, std = (0.0,) * channels, (1.0,) * channels
    else:
        mean, std = _parse(choice, channels)
    if len(mean) != channels or len(std) != channels:
        raise LandscapeError(f"--normalization {choice!r} has {len(mean)} mean and {len(std)} std values for "
                             f"{channels}-channel images; give {channels} of each (or one)")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _parse(spec: str, channels: int) -> tuple[tuple, tuple]:
    hint = f"--normalization takes {HELP}"
    if spec.count("/") != 1:
        raise LandscapeError(f"bad --normalization {spec!r}; {hint}")
    try:
        mean, std = (tuple(float(v) for v in part.split(",")) for part in spec.split("/"))
    except ValueError:
        raise LandscapeError(f"bad --normalization {spec!r}: MEAN and STD must be comma-separated numbers; {hint}")
    if any(s <= 0 for s in std):
        raise LandscapeError(f"bad --normalization {spec!r}: every std must be positive")
    mean = mean * channels if len(mean) == 1 else mean
    std = std * channels if len(std) == 1 else std
    return mean, std


def recorded_for(info: dict) -> dict | None:
    """What ``resolve_normalization`` takes as ``recorded`` for a model's ``info``: its recorded normalization;
    ``{}`` for a network of the user's own that records none (``default`` must then be stated); ``None`` for a
    built-in architecture (the data set's usual one)."""
    return info.get("normalization") or ({} if info.get("own") else None)


def _identity(mean: tuple, std: tuple) -> bool:
    """A normalization that changes nothing (``synthetic`` data's): no ambiguity to ask about."""
    return all(m == 0 for m in mean) and all(s == 1 for s in std)


def describe(mean: tuple, std: tuple) -> str:
    """``m1,m2,m3/s1,s2,s3`` with 6 significant digits: what the surface file records."""
    return ",".join(f"{v:.6g}" for v in mean) + "/" + ",".join(f"{v:.6g}" for v in std)
