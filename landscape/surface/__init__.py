"""The surface file (HDF5, DESIGN section 6) and the resumable computation of a grid.

Torch-free on purpose: rendering reads surface files through this package and must never import torch.

Modules: ``grid`` (grid specs and the block-by-block scheduler), ``h5io`` (safe HDF5 access and the writer's
lock), ``schema`` (what a file holds, reading it), ``writer`` (creating, resuming and filling a file).
"""

from landscape.surface.grid import (MAX_AXIS_POINTS, compute_points, compute_surface, grid_coords, grid_shape,
                                    grid_str, parse_grid, progress_bar)
from landscape.surface.h5io import FileLock, attr_value, open_h5, probe_h5
from landscape.surface.schema import (ATTRS, FORMAT_VERSION, STAT_KEYS, VALUE_KEYS, Surface, read_direction,
                                      read_surface, stat_keys, summarize, touch_everything, write_direction)
from landscape.surface.writer import SurfaceWriter, check_resume

__all__ = ["MAX_AXIS_POINTS", "compute_points", "compute_surface", "grid_coords", "grid_shape", "grid_str",
           "parse_grid", "progress_bar", "FileLock", "attr_value", "open_h5", "probe_h5", "ATTRS", "FORMAT_VERSION",
           "STAT_KEYS", "VALUE_KEYS", "stat_keys", "Surface", "read_direction", "read_surface", "summarize",
           "touch_everything", "write_direction", "SurfaceWriter", "check_resume"]
