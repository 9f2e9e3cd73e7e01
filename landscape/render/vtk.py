"""ParaView export: a VTK XML PolyData file (``.vtp``) of the surface, any grid shape.

Points are (alpha, beta, value); each grid cell with four finite corners becomes a quad, so unfinished or
diverged points are holes. Point data carries the loss (and accuracy when present).
"""

from __future__ import annotations

import numpy as np

from landscape.paths import atomic_open
from landscape.render.scale import Scale
from landscape.surface import Surface


def _binary(a: np.ndarray, dtype: str) -> str:
    """VTK XML inline binary: base64 of a UInt32 byte count followed by the little-endian values.

    Binary rather than ASCII because VTK's ASCII parser cannot read NaN, and unfinished points are NaN.
    """
    import base64
    import struct

    raw = np.ascontiguousarray(np.asarray(a).ravel(), dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    return base64.b64encode(struct.pack("<I", len(raw)) + raw).decode("ascii")


def _array(name: str | None, a: np.ndarray, vtk_type: str, np_type: str, components: int = 1) -> str:
    label = f' Name="{name}"' if name else ""
    comps = f' NumberOfComponents="{components}"' if components > 1 else ""
    return f'<DataArray type="{vtk_type}"{label}{comps} format="binary">{_binary(a, np_type)}</DataArray>'


def write_vtp(s: Surface, key: str, path: str, scale: Scale | None = None) -> str:
    """Write ``path``; z is the (log10 when ``scale.log``) value, clipped to the scale when given."""
    x, y = s.xcoordinates, (s.ycoordinates if s.is_2d else np.zeros(1))
    raw = np.atleast_2d(s.values[key])
    z = scale.transform(raw) if scale is not None else np.where(np.isfinite(raw), raw, np.nan)
    if scale is not None:
        z = np.where(np.isnan(z), np.nan, np.clip(z, scale.lo, scale.hi))
    ny, nx = z.shape
    X, Y = np.meshgrid(x, y)
    pts = np.stack([X.ravel(), Y.ravel(), np.nan_to_num(z.ravel(), nan=0.0)], axis=1)
    ok = np.isfinite(z)
    if ny > 1:  # a quad per cell with four finite corners (vectorized: a 1001x1001 grid has a million cells)
        cell = ok[:-1, :-1] & ok[:-1, 1:] & ok[1:, 1:] & ok[1:, :-1]
        i, j = np.nonzero(cell)
        a = i * nx + j
        polys = np.stack([a, a + 1, a + nx + 1, a + nx], axis=1)
        kind, per = "Polys", 4
    else:  # 1D: a polyline through consecutive finite points
        j = np.flatnonzero(ok[0, :-1] & ok[0, 1:])
        polys = np.stack([j, j + 1], axis=1)
        kind, per = "Lines", 2
    conn = np.array(polys, dtype=np.int64).reshape(-1)
    offsets = np.arange(1, len(polys) + 1, dtype=np.int64) * per
    arrays = [(key, np.where(np.isfinite(raw), raw, np.nan).ravel())]
    acc_key = key.rsplit("_", 1)[0] + "_acc"
    if acc_key in s.values and acc_key != key:
        arrays.append((acc_key, np.atleast_2d(s.values[acc_key]).ravel()))
    data = "".join(_array(n, v, "Float64", "f8") for n, v in arrays)
    counts = {"Lines": 0, "Polys": 0}
    counts[kind] = len(polys)
    xml = ('<?xml version="1.0"?>\n<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian" '
           'header_type="UInt32">\n<PolyData>\n'
           f'<Piece NumberOfPoints="{len(pts)}" NumberOfVerts="0" NumberOfLines="{counts["Lines"]}" '
           f'NumberOfStrips="0" NumberOfPolys="{counts["Polys"]}">\n'
           f'<PointData Scalars="{key}">{data}</PointData>\n'
           f'<Points>{_array(None, pts, "Float64", "f8", 3)}</Points>\n'
           f'<{kind}>{_array("connectivity", conn, "Int64", "i8")}{_array("offsets", offsets, "Int64", "i8")}'
           f'</{kind}>\n</Piece>\n</PolyData>\n</VTKFile>\n')
    with atomic_open(path, "w") as f:
        f.write(xml)
    return path
