"""Loading a state_dict into a model whose parameter names it may only match after removing a wrapper's prefix
(``model.`` of a Lightning module, ``net.``, ``module.`` of DataParallel, ``_orig_mod.`` of torch.compile, or any
combination), with an error that lists what does not match.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn as nn

from landscape.errors import LandscapeError


def find_prefix(sd_keys, own_keys) -> str | None:
    """The one prefix whose removal turns ``sd_keys`` into the model's keys, or ``None``.

    The candidate is the prefix most keys share in front of a model key (``model.conv1.weight`` ->
    ``model.``); it counts only if every state_dict key carries it and, removed, they match the model's keys
    (``num_batches_tracked`` aside, which old PyTorch did not save).
    """
    own = set(own_keys)
    votes: Counter = Counter()
    for k in sd_keys:
        parts = k.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in own:
                votes[".".join(parts[:i]) + "."] += 1
                break
    for prefix, _ in votes.most_common(3):
        if not all(k.startswith(prefix) for k in sd_keys):
            continue
        stripped = {k[len(prefix):] for k in sd_keys}
        if stripped <= own and not {k for k in own - stripped if not k.endswith("num_batches_tracked")}:
            return prefix
    return None


def load_into(model: nn.Module, sd: dict, source: str = "checkpoint", hint: str = "", assign: bool = False) -> str:
    """Load ``sd`` into ``model`` strictly, after removing a common prefix when that makes the keys match;
    tolerates only missing ``num_batches_tracked`` (old PyTorch).

    Args:
        hint: appended to a mismatch message (what to try instead).
        assign: the model was built on the meta device: its tensors become ``sd``'s own (in the model's dtypes;
            no second copy of the weights), a missing ``num_batches_tracked`` a zero.

    Returns:
        The prefix removed (``""`` for none).

    Raises:
        LandscapeError: listing missing / unexpected keys and shape mismatches.
    """
    own = model.state_dict()
    prefix = ""
    if set(sd) - set(own):
        found = find_prefix(list(sd), list(own))
        if found:
            prefix = found
            sd = {k[len(found):]: v for k, v in sd.items()}
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            # the file's own names, escaped and cut: a hostile one cannot break the message's one line or make
            # it megabytes long
            shown = ", ".join(repr(k)[1:-1][:120] for k in unexpected[:8])
            parts.append(f"unexpected keys ({len(unexpected)}): {shown}"
                         f"{' ...' if len(unexpected) > 8 else ''}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:4])}")
        arch = getattr(model, "arch", type(model).__name__)
        raise LandscapeError(f"{source} does not match architecture {arch!r}: {' | '.join(parts)}"
                             f"{'; ' + hint if hint else ''}")
    if assign:
        full = {k: (sd[k].to(own[k].dtype) if k in sd else torch.zeros(own[k].shape, dtype=own[k].dtype))
                for k in own}
        model.load_state_dict(full, strict=True, assign=True)
        return prefix
    full = {k: (sd[k] if k in sd else own[k]) for k in own}
    model.load_state_dict(full, strict=True)
    return prefix
