"""landscape: loss-landscape surfaces of ResNets and plain networks (Li et al. 2018), batched on the GPU."""

__version__ = "0.1.0"
