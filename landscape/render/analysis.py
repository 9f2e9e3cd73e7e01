"""Figures of the ResNet paper's own analyses, from plain numbers (no torch): training curves (He et al.
Fig. 1/6, the degradation problem) and layer-response statistics (He et al. Fig. 7)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from landscape.render.static import _save  # noqa: E402

COLOURS = ["tab:orange", "tab:blue", "tab:red", "tab:green", "tab:purple", "tab:brown"]


def degradation_figure(runs: dict[str, dict], base: str, formats: list[str]) -> list[str]:
    """Training (dashed) and test (solid) error per epoch; plain nets left, ResNets right, as He et al. Fig. 6.

    Args:
        runs: label -> history with ``train_err`` and ``test_err`` lists (percent); labels starting with
            ``plain`` go to the left panel, the others to the right.
    """
    groups = {"plain": {k: v for k, v in runs.items() if k.startswith("plain")},
              "ResNet": {k: v for k, v in runs.items() if not k.startswith("plain")}}
    panels = [(g, r) for g, r in groups.items() if r]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False, sharey=True)
    top = max(max(max(h["train_err"]), max(h["test_err"])) for h in runs.values())
    for ax, (title, group) in zip(axes[0], panels):
        for i, (label, h) in enumerate(sorted(group.items(), key=lambda kv: _depth(kv[0]))):
            c = COLOURS[i % len(COLOURS)]
            ep = np.arange(1, len(h["test_err"]) + 1)
            ax.plot(ep, h["train_err"], "--", color=c, lw=1.0, alpha=0.8)
            ax.plot(ep, h["test_err"], "-", color=c, lw=2.0, label=f"{label} (test {h['test_err'][-1]:.1f} %)")
        ax.set_title(f"{title} nets: dashed = training error, bold = test error", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, min(100, top * 1.05))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("error (%)")
    fig.tight_layout()
    return _save(fig, f"{base}_degradation", formats)


def responses_figure(responses: dict[str, list[float]], base: str, formats: list[str]) -> list[str]:
    """Std of each 3x3 layer's response (after BN, before the nonlinearity/addition): top in layer order, bottom
    sorted in descending magnitude (He et al. Fig. 7)."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6.4, 6.0))
    for i, (label, stds) in enumerate(sorted(responses.items(), key=lambda kv: (_depth(kv[0]), kv[0]))):
        c = COLOURS[i % len(COLOURS)]
        ls = "-" if label.startswith("plain") else "--"
        a1.plot(np.arange(1, len(stds) + 1), stds, ls, color=c, lw=1.4, label=label)
        a2.plot(np.arange(1, len(stds) + 1), sorted(stds, reverse=True), ls, color=c, lw=1.4, label=label)
    a1.set_xlabel("layer index (original)")
    a2.set_xlabel("layer index (sorted by magnitude)")
    for a in (a1, a2):
        a.set_ylabel("std")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, f"{base}_responses", formats)


def _depth(label: str) -> int:
    digits = "".join(ch for ch in label if ch.isdigit())
    return int(digits) if digits else 0
