"""dmbq worker: serves the dmbq contract (proto/dmbq.proto) with a PyTorch training engine."""

__version__ = "0.1.0"
