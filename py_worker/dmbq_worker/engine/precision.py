"""Full fp32 arithmetic for scoring a model: no autocast, no TF32.

A quantized network rounds its activations to a few levels, so a relative error of 1e-3 (TF32's 10-bit mantissa,
cuDNN's default for fp32 convolutions) moves some activations to the neighbouring level and changes predictions:
a W2/A2 ResNet-20 scored on an H100 with TF32 and reloaded on a CPU differed by 13 of 10,000 test images. Training
may use bf16 and TF32; the score reported for a run, and every reload of its exported file, use this.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def exact_fp32() -> Iterator[None]:
    """Disable TF32 for convolutions and matmuls inside the block (process-wide flags, restored after)."""
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
