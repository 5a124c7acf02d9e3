"""Session-wide set-up that must precede the first `import torch` of any test module."""

from __future__ import annotations

import importlib.util
import os

# The fused quantizers' Triton kernels run on CPU tensors only in Triton's interpreter, and triton.language makes its
# own jit functions when it is imported (torch imports it early): so the switch goes here, before any test imports
# torch. It changes nothing else on a machine without a GPU; tests opt in per test with DMBQ_FUSED_QUANT=interpret.
if importlib.util.find_spec("triton") is not None:
    import torch  # does not import triton itself (torch._dynamo does)

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
