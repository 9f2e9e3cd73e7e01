"""The 1D figure (matplotlib): loss, and accuracy on a twin axis when the file has it, against alpha; the loss's
95 % interval as a band where the file records a sampling error (``--samples``, ``--tolerance``)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from landscape.render.scale import fmt_value, make_scale  # noqa: E402
from landscape.render.static import _title, arch_name, save  # noqa: E402
from landscape.render.text import mpl  # noqa: E402
from landscape.sampling import Z95, figure_cap  # noqa: E402
from landscape.surface import Surface  # noqa: E402

SPLITS = (("train", "-"), ("test", "--"))
ACC_TICKS = (0, 20, 40, 60, 80, 100)


def loss_range(s: Surface, log: bool = False, vmin: float | None = None, vmax: float | None = None
               ) -> tuple[float | None, float, float, bool]:
    """The loss axis of a 1D figure, shared by the PNG and the HTML page.

    Returns:
        ``(bottom, top, largest finite loss, clipped)``: up to the 2D figures' cap (max(10 min, min + 10)) or
        the largest loss when lower, with a little head-room; ``clipped`` when some finite loss lies above
        ``top``. ``bottom`` is None on a log axis (matplotlib picks it).
    """
    losses = [s.values[k] for k in loss_keys(s)]
    big = max(float(np.nanmax(np.where(np.isfinite(v), v, np.nan))) for v in losses)
    # The 2D figures' cap, but not their 95th percentile: a curve that fits under the cap is shown whole.
    sc = make_scale(losses, vmin, big if vmax is None else vmax, None, log)
    cap = sc.vmax if (vmax is not None or log) else min(big, figure_cap(sc.vmin))
    recorded = str(s.attrs.get("loss_cap", ""))
    if vmax is None and recorded != "" and sc.vmin < float(recorded) < cap:
        cap = float(recorded)  # points above it were only resolved as off the scale (--tolerance)
    top = cap if vmax is not None else (cap * 1.5 if log else cap + 0.05 * (cap - min(sc.vmin, 0.0)))
    bottom = vmin if vmin is not None else (None if log else 0.0)
    return bottom, top, big, big > top


def interval(s: Surface, split: str) -> np.ndarray | None:
    """The half-width of the 95 % interval of each point's mean loss (NaN where unknown), or ``None`` when the
    file records no sampling error (all the data at every point: the values are exact, no band to draw)."""
    se = s.values.get(f"{split}_loss_se")
    if se is None or not np.any(np.nan_to_num(se) > 0):
        return None
    return Z95 * np.asarray(se, dtype=np.float64)


def loss_keys(s: Surface) -> list[str]:
    """The loss datasets a 1D figure draws: train and test when both exist."""
    return [f"{sp}_loss" for sp, _ in SPLITS if f"{sp}_loss" in s.values]


def render_1d(s: Surface, base: str, formats: list[str], log: bool = False, vmin: float | None = None,
              vmax: float | None = None) -> list[str]:
    """Loss (left axis) and accuracy (right axis, only when the file has it) against alpha: ``<base>_curve``.

    When the loss axis cuts off the walls, the figure says so and gives the maximum. An interpolation between two
    models (``--ckpt2``) names them: its endpoints α = 0 and α = 1 are marked and the title says A → B.
    """
    if not loss_keys(s):
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    has_acc = any(f"{sp}_acc" in s.values for sp, _ in SPLITS)
    ax2 = ax.twinx() if has_acc else None
    x = s.xcoordinates
    for split, ls in SPLITS:
        loss = s.values.get(f"{split}_loss")
        acc = s.values.get(f"{split}_acc")
        if loss is not None:
            ax.plot(x, np.where(np.isfinite(loss), loss, np.nan), ls, color="tab:blue", lw=1.6,
                    label=f"{split} loss")
            half = interval(s, split)
            if half is not None:
                ax.fill_between(x, loss - half, loss + half, color="tab:blue", alpha=0.25, lw=0,
                                label=f"{split} loss, 95 % interval")
        if acc is not None and ax2 is not None:
            ax2.plot(x, acc, ls, color="tab:red", lw=1.2, label=f"{split} accuracy")
    if log:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v)))
    bottom, top, big, clipped = loss_range(s, log, vmin, vmax)
    ax.set_ylim(bottom=bottom, top=top)
    if clipped:
        # Why say it: a reader would otherwise take the top of the axis for the highest loss. Below the legend,
        # outside the data, where no curve can cross it.
        ax.text(0.5, -0.2, f"loss axis cut at {fmt_value(top)} (max {fmt_value(big)})",
                transform=ax.transAxes, ha="center", va="top", fontsize=8, color="dimgrey")
    ends = endpoints(s)
    if ends is None:
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        ax.set_xlabel(r"$\alpha$")
    else:
        for a, (letter, name) in zip((0.0, 1.0), ends):
            if x[0] <= a <= x[-1]:
                ax.axvline(a, color="black", lw=0.8, ls="--")
                ax.annotate(f"{letter}: {mpl(name, 40)}", (a, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(3, -3), textcoords="offset points", ha="left", va="top", fontsize=8,
                            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
        ax.set_xlabel(r"$\alpha$  (0: A, 1: B; $\theta = A + \alpha\,(B - A)$)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v).replace("-", "\u2212")))
    ax.set_ylabel("loss", color="tab:blue")
    handles, labels = ax.get_legend_handles_labels()
    if ax2 is not None:
        ax2.set_ylim(0, 100)
        ax2.set_yticks(ACC_TICKS)
        ax2.set_ylabel("accuracy (%)", color="tab:red")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    # Below the axes, outside the data: inside, it would sit on the accuracy plateau or the basin.
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(labels), fontsize=8,
              frameon=False)
    title = _title(s, "loss / accuracy" if has_acc else "loss")
    if ends is not None:
        title = title.replace(arch_name(s), f"{arch_name(s)}: A → B", 1)
    ax.set_title(title)
    return save(fig, f"{base}_curve", formats)


def endpoints(s: Surface) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """For an interpolation between two models (``directions`` ``target:NAME``, 1D): ``(("A", its name), ("B",
    NAME))``; else None."""
    src = str(s.attrs.get("directions", ""))
    if s.is_2d or not src.startswith("target:"):
        return None
    path = os.path.normpath(str(s.attrs.get("ckpt") or "theta*"))
    a = "/".join(x for x in (os.path.basename(os.path.dirname(path)), os.path.basename(path)) if x)
    b = src[len("target:"):].split(" | ")[0] or "ckpt2"
    return ("A", os.path.splitext(a)[0]), ("B", os.path.splitext(b)[0])
