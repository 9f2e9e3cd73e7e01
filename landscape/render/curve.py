"""The 1D figure (matplotlib): loss, and accuracy on a twin axis when the file has it, against alpha; the loss's
95 % interval as a band where the file records a sampling error (``--samples``, ``--tolerance``); θ* (or an
interpolation's ends A and B) marked and named, diverged points marked. :func:`marks`, :func:`diverged` and
:func:`loss_range` are shared with the HTML page (:func:`landscape.render.html.render_html_1d`)."""

from __future__ import annotations


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from landscape.render.scale import fmt_value, make_scale  # noqa: E402
from landscape.render.static import _title, arch_name, save  # noqa: E402
from landscape.render.text import mpl, run_name  # noqa: E402
from landscape.sampling import Z95, figure_cap  # noqa: E402
from landscape.surface import Surface  # noqa: E402

SPLITS = (("train", "-"), ("test", "--"))
ACC_TICKS = (0, 20, 40, 60, 80, 100)
ACC_TOP = 105  # the accuracy axis's top: head-room above a peak of 100 %
DIVERGED_COLOUR = "black"


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

    When the loss axis cuts off the walls, the figure says so and gives the maximum. The named points of the α axis
    (:func:`marks`: θ* at α = 0, or an interpolation's models A and B at α = 0 and 1, its title then saying A → B)
    are dashed lines named above the axes, where no curve passes. A diverged point (NaN/inf loss) is a '×' on the
    top edge ("diverged" in the legend); the loss line has a gap there.
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
    bad = diverged(s)
    if bad.any():
        # on the top edge (the loss ran off to infinity), markers only: no line joins them
        ax.plot(np.asarray(x)[bad], np.ones(int(bad.sum())), ls="none", marker="x", ms=6, mew=1.5,
                color=DIVERGED_COLOUR, transform=ax.get_xaxis_transform(), clip_on=False, zorder=5,
                label="diverged")
    if log:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v)))
    bottom, top, big, clipped = loss_range(s, log, vmin, vmax)
    ax.set_ylim(bottom=bottom, top=top)
    ends = endpoints(s)
    rows = 0
    for a, text, anchor, row in marks(s):
        ax.axvline(a, color="black", lw=0.8, ls="--", zorder=1.5)
        # above the axes: inside, the loss line crossed the name where it shot up beside B
        dx = {"left": 3, "right": -3}.get(anchor, 0)
        ax.annotate(mpl(text, 40), (a, 1.0), xycoords=("data", "axes fraction"), xytext=(dx, 4 + 11 * row),
                    textcoords="offset points", ha=anchor, va="bottom", fontsize=8, annotation_clip=False)
        rows = max(rows, row + 1)
    if ends is None:
        ax.set_xlabel(r"$\alpha$  ($\theta = \theta^* + \alpha\,\delta$)")
    else:
        ax.set_xlabel(r"$\alpha$  (0: A, 1: B; $\theta = A + \alpha\,(B - A)$)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v).replace("-", "\u2212")))
    ax.set_ylabel("loss", color="tab:blue")
    handles, labels = ax.get_legend_handles_labels()
    if ax2 is not None:
        # head-room above 100 %: a peak of 100 % drawn on the top frame was lost in it
        ax2.set_ylim(0, ACC_TOP)
        ax2.set_yticks(ACC_TICKS)
        ax2.set_ylabel("accuracy (%)", color="tab:red")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if "diverged" in labels:  # last, after the curves
        i = labels.index("diverged")
        handles, labels = handles[:i] + handles[i + 1:] + [handles[i]], labels[:i] + labels[i + 1:] + ["diverged"]
    # Below the axes, outside the data: inside, it would sit on the accuracy plateau or the basin.
    leg = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(labels), 4),
                    fontsize=8, frameon=False)
    if clipped:
        # Why say it: a reader would otherwise take the top of the axis for the highest loss. Below the legend
        # (however many rows it has), outside the data, where no curve can cross it.
        ax.annotate(f"loss axis cut at {fmt_value(top)} (max {fmt_value(big)})", (0.5, 0.0), xycoords=leg,
                    xytext=(0, -2), textcoords="offset points", ha="center", va="top", fontsize=8,
                    color="dimgrey")
    title = _title(s, "loss / accuracy" if has_acc else "loss")
    if ends is not None:
        title = title.replace(arch_name(s), f"{arch_name(s)}: A → B", 1)
    ax.set_title(title, pad=6 + 11 * rows + (4 if rows else 0))  # above the names of the marks
    return save(fig, f"{base}_curve", formats)


def diverged(s: Surface) -> np.ndarray:
    """Per α, whether a split's loss diverged: computed (its done flag; without flags, not NaN) and NaN or inf."""
    bad = np.zeros(len(s.xcoordinates), dtype=bool)
    for key in loss_keys(s):
        loss = np.asarray(s.values[key], dtype=np.float64)
        done = (s.done or {}).get(key[:-len("_loss")])
        done = ~np.isnan(loss) if done is None else np.asarray(done, dtype=bool)
        bad |= done & ~np.isfinite(loss)
    return bad


def marks(s: Surface) -> list[tuple[float, str, str, int]]:
    """The named points of a 1D figure's α axis inside its range, shared by the PNG and the page: ``(α, name,
    anchor, row)``. θ* at α = 0, or an interpolation's ``A: name`` at 0 and ``B: name`` at 1. ``anchor``
    (``left``, ``center``, ``right``) is the side of α the name starts from: A's name ends at α = 0 and B's
    starts at α = 1, so the two never meet, unless one is near the edge of the axis (then turned inward); two
    names that could still meet take two rows (``row`` 1 above 0)."""
    x = np.asarray(s.xcoordinates, dtype=np.float64)
    x0, x1 = float(x[0]), float(x[-1])
    width = x1 - x0 if x1 > x0 else 1.0

    def frac(a):
        return (a - x0) / width

    ends = endpoints(s)
    named = [(0.0, "θ*")] if ends is None else [(0.0, f"{ends[0][0]}: {ends[0][1]}"),
                                                (1.0, f"{ends[1][0]}: {ends[1][1]}")]
    named = [(a, t) for a, t in named if x0 <= a <= x1]
    if len(named) == 1:
        a, t = named[0]
        f = frac(a)
        side = "left" if f < 0.1 else "right" if f > 0.9 else "center"
        if ends is not None:  # one end of an interpolation: its name away from the other end
            side = ("right" if f > 0.2 else "left") if a == 0.0 else ("left" if f < 0.8 else "right")
        return [(a, t, side, 0)]
    out = []
    for a, t in named:
        f = frac(a)
        side = ("right" if f >= 0.2 else "left") if a == 0.0 else ("left" if f <= 0.8 else "right")
        out.append((a, t, side, 0))
    if len(out) == 2 and out[0][2] == out[1][2] and frac(1.0) - frac(0.0) < 0.4:
        out[1] = out[1][:3] + (1,)
    return out


def endpoints(s: Surface) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """For an interpolation between two models (``directions`` ``target:NAME``, 1D): ``(("A", its name), ("B",
    NAME))``, each named alike by its folder and file name (``r20_s1/final``); else None."""
    src = str(s.attrs.get("directions", ""))
    if s.is_2d or not src.startswith("target:"):
        return None
    b = src[len("target:"):].split(" | ")[0]
    return ("A", run_name(s.attrs.get("ckpt") or "theta*", ext=False)), ("B", run_name(b, ext=False) if b else "ckpt2")
