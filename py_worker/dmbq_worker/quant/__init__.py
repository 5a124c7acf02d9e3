"""Quantized layers (DMBQ weights, {0,1}-basis activations), scheme application and LBA sensitivities.

The worker applies the scheme it is sent (bits per channel, level tables, activation mode); it never decides bits
or levels itself. See sensitivity.py for the exact definition of the sensitivities.
"""

from __future__ import annotations

from dmbq_worker.quant.act_quantizer import ActQuantizer
from dmbq_worker.quant.convert import LayerRoleName, QuantLayerRef, convert_model
from dmbq_worker.quant.layers import QuantConv2d, QuantLinear
from dmbq_worker.quant.options import apply_quant_options, clip_parameters
from dmbq_worker.quant.scale_updates import ScaleUpdater
from dmbq_worker.quant.scheme import (
    LayerQuantConfig,
    SchemeConfig,
    apply_scheme,
    scheme_from_proto,
    scheme_to_proto,
)
from dmbq_worker.quant.sensitivity import LayerStatsArrays, SensitivityCollector, stats_to_proto
from dmbq_worker.quant.weight_batch import WeightBatcher
from dmbq_worker.quant.weight_quantizer import WeightQuantizer

__all__ = [
    "ActQuantizer",
    "LayerQuantConfig",
    "LayerRoleName",
    "LayerStatsArrays",
    "QuantConv2d",
    "QuantLayerRef",
    "QuantLinear",
    "ScaleUpdater",
    "SchemeConfig",
    "SensitivityCollector",
    "WeightBatcher",
    "WeightQuantizer",
    "apply_quant_options",
    "apply_scheme",
    "clip_parameters",
    "convert_model",
    "scheme_from_proto",
    "scheme_to_proto",
    "stats_to_proto",
]
