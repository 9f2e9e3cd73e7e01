"""The convexity maps of Li et al. (Fig. 8) from a surface computed with ``--eigen``.

Two panels over the plane: |lambda_min / lambda_max| (0: locally convex; near 1: curving down about as strongly
as up), and the signed lambda_min / lambda_max (negative where some direction curves down). Never imports torch.
"""

from __future__ import annotations

import numpy as np

from landscape.render.text import mpl
from landscape.surface import Surface


def eigen_ratio(s: Surface) -> np.ndarray:
    """lambda_min / lambda_max at every point (NaN where not computed or lambda_max is 0)."""
    hi, lo = s.values["max_eig"], s.values["min_eig"]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = lo / hi
    r[~np.isfinite(r)] = np.nan
    return r


def samples_said(s: Surface) -> str:
    """`` on N samples``: what each point's Hessian was averaged over (the surface's samples), or nothing."""
    n = s.attrs.get("n_samples")
    return f" on {int(n):,} samples" if isinstance(n, (int, float)) and not isinstance(n, bool) and n > 0 else ""


def render_eigen(s: Surface, base: str, formats: list[str]) -> list[str]:
    """Write ``<base>_eigen.<ext>``: the |ratio| map and the signed ratio, with theta* marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = eigen_ratio(s)
    X, Y = np.meshgrid(s.xcoordinates, s.ycoordinates)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), constrained_layout=True)
    panels = [(np.abs(r), "|λmin / λmax|  (0: convex)", "viridis", 0.0, 1.0, "|λmin / λmax|"),
              (r, "λmin / λmax  (signed)", "RdBu_r", -1.0, 1.0, "λmin / λmax")]
    for ax, (z, title, cmap, lo, hi, label) in zip(axes, panels):
        m = ax.pcolormesh(X, Y, np.clip(z, lo, hi), cmap=cmap, vmin=lo, vmax=hi, shading="nearest")
        ax.plot([0], [0], marker="*", color="white", markeredgecolor="black", markersize=12, zorder=5)
        ax.set_title(title)
        ax.set_xlabel("α")
        ax.set_ylabel("β")
        ax.set_aspect("equal")
        fig.colorbar(m, ax=ax, shrink=0.85, label=label)
    arch = mpl(s.attrs.get("arch", ""))
    fig.suptitle(f"{arch}: Hessian eigenvalue ratio{samples_said(s)}" + (
        f" (largest |ratio| {np.nanmax(np.abs(r)):.2g})" if np.isfinite(r).any() else ""))
    from landscape.render.static import save

    return save(fig, f"{base}_eigen", formats, dpi=150, bbox_inches=None)


def render_eigen_1d(s: Surface, base: str, formats: list[str]) -> list[str]:
    """Write ``<base>_eigen.<ext>`` for a 1D surface: lambda_max and lambda_min along alpha (symmetric-log axis:
    they differ by decades and lambda_min changes sign) above |lambda_min / lambda_max|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, hi, lo, r = s.xcoordinates, s.values["max_eig"], s.values["min_eig"], eigen_ratio(s)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, constrained_layout=True,
                                      gridspec_kw=dict(height_ratios=[3, 2]))
    top.plot(x, hi, "o-", color="C3", ms=3, label="λmax")
    top.plot(x, lo, "o-", color="C0", ms=3, label="λmin")
    both = np.concatenate([hi[np.isfinite(hi)], lo[np.isfinite(lo)]])
    top.set_yscale("symlog", linthresh=_linthresh(both))
    top.set_yticks(_symlog_ticks(both, _linthresh(both)))
    top.axhline(0.0, color="0.6", lw=0.8)
    top.set_ylabel("Hessian eigenvalue")
    top.legend(loc="best", fontsize=9)
    bottom.plot(x, np.abs(r), "o-", color="k", ms=3)
    bottom.set_ylim(0.0, 1.0)
    bottom.set_ylabel("|λmin / λmax|  (0: convex)")
    bottom.set_xlabel("α")
    for ax in (top, bottom):
        ax.axvline(0.0, color="0.8", lw=0.8, zorder=0)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{mpl(s.attrs.get('arch', ''))}: curvature along α{samples_said(s)}")
    from landscape.render.static import save

    return save(fig, f"{base}_eigen", formats, dpi=150, bbox_inches=None)


def _linthresh(v: np.ndarray) -> float:
    """The symmetric-log axis's linear half-width: the decade of the smallest nonzero |value|, at least 1e-3 of
    the largest (so one tiny value does not spread the axis over many empty decades)."""
    mag = np.abs(v[v != 0])
    if not mag.size:
        return 1.0
    return float(10.0 ** np.floor(np.log10(max(mag.min(), 1e-3 * mag.max()))))


def _symlog_ticks(v: np.ndarray, linthresh: float, most: int = 4) -> list[float]:
    """0 and +-10^k above the linear region, on the sides the values reach, at most ``most`` decades a side
    (matplotlib's own ticks crowd around 0 and overlap)."""
    mag = np.abs(v[np.isfinite(v)])
    if not mag.size or mag.max() <= linthresh:
        return [0.0]
    ks = list(range(int(round(np.log10(linthresh))) + 1, int(np.ceil(np.log10(mag.max()))) + 1))
    ks = ks[::-(-len(ks) // most)]
    signs = [sg for sg, has in ((1.0, np.any(v > linthresh)), (-1.0, np.any(v < -linthresh))) if has]
    return sorted([0.0] + [sg * 10.0 ** k for k in ks for sg in signs])


def render_html_eigen(s: Surface, key: str, path: str) -> str:
    """``<name>_eigen.html``: the same two maps, interactive; hovering a cell gives alpha, beta, lambda_max,
    lambda_min, the ratio and the loss there (what a reader checks before trusting a bright cell)."""
    from landscape.render.html import _arch, _page, _plotly, _settings_html, _xy_axes

    from landscape.render.geometry import thin_indices
    from landscape.render.html_traces import MAP_POINTS

    go, _ = _plotly()
    # a grid finer than the page's pixels is drawn at most MAP_POINTS a side, as the main page's map
    iy, ix = thin_indices(len(s.ycoordinates), MAP_POINTS), thin_indices(len(s.xcoordinates), MAP_POINTS)
    pick = np.ix_(iy, ix)
    r = eigen_ratio(s)[pick]
    custom = np.dstack([s.values["max_eig"][pick], s.values["min_eig"][pick], s.values[key][pick], r])
    hover = ("α %{x:.2f}, β %{y:.2f}<br>λmax %{customdata[0]:.4g}<br>λmin %{customdata[1]:.4g}"
             "<br>λmin/λmax %{customdata[3]:.3f}<br>" + key.replace("_", " ") + " %{customdata[2]:.3g}<extra></extra>")
    cols = [[0.0, 0.42], [0.56, 0.98]]
    panels = [(np.abs(r), "|λmin / λmax|  (0: convex)", "Viridis", 0.0, 1.0, "|λmin / λmax|"),
              (r, "λmin / λmax  (signed)", "RdBu_r", -1.0, 1.0, "λmin / λmax")]
    fig = go.Figure()
    notes = []
    for c, (z, title, cmap, lo, hi, label) in enumerate(panels):
        xa, ya = ("x", "y") if c == 0 else ("x2", "y2")
        fig.add_trace(go.Heatmap(x=s.xcoordinates[ix], y=s.ycoordinates[iy], z=z, zmin=lo, zmax=hi, colorscale=cmap,
                                 customdata=custom, hovertemplate=hover, xaxis=xa, yaxis=ya,
                                 colorbar=dict(x=cols[c][1] + 0.005, xanchor="left", len=0.9, thickness=14,
                                               title=dict(text=label, side="right"))))
        fig.add_trace(go.Scatter(x=[0.0], y=[0.0], mode="markers", xaxis=xa, yaxis=ya, hoverinfo="skip",
                                 marker=dict(symbol="star", size=16, color="white", line=dict(color="black",
                                                                                               width=1))))
        notes.append(dict(text=title, x=(cols[c][0] + cols[c][1]) / 2, y=1.0, xref="paper", yref="paper",
                          yanchor="bottom", showarrow=False, font=dict(size=14)))
    _xy_axes(fig, 2, [0.0, 0.94], cols, surfaces=[s, s])
    # the top margin holds the toolbar above the panels' titles
    fig.update_layout(annotations=notes, margin=dict(l=10, r=60, t=56, b=40), showlegend=False)
    return _page(fig, f"{_arch(s)} — Hessian eigenvalue ratio{samples_said(s)} (Li et al. Fig. 8)",
                 _settings_html(s), path)
