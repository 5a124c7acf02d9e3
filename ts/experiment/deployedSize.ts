// The size a deployed model needs, counted tensor by tensor at the width it is stored at:
// quantized weights at their channel's bits (0-bit channels store nothing), one float32 scale per quantized
// channel, one float32 clip per quantized activation layer, the α tables in use (float32), and every other
// parameter and buffer (BN, biases, full-precision layers) at float32.
import type { Configured } from "../gen/dmbq.js";
import type { PolicyState } from "../allocation/index.js";

export interface SizeBreakdown {
  quantizedWeightBytes: number;
  scaleAndTableBytes: number;
  fullPrecisionBytes: number;
  totalBytes: number;
  fpBytes: number;
}

export function deployedSize(configured: Configured, state: PolicyState | undefined, tableCount: { alphas: number }): SizeBreakdown {
  const fpBytes = Number(configured.fpParamBytes);
  if (!state) return { quantizedWeightBytes: 0, scaleAndTableBytes: 0, fullPrecisionBytes: fpBytes, totalBytes: fpBytes, fpBytes };
  let quantBits = 0;
  let quantizedFloat32Bytes = 0; // what the quantized weights would take at float32 (subtracted from the FP total)
  let scales = 0;
  configured.layers.forEach((layer, i) => {
    const bits = state.layers[i]!;
    let layerQuantized = false;
    for (const b of bits.weightBits) {
      if (b === 32) continue;
      layerQuantized = true;
      quantBits += b * layer.paramsPerOutChannel;
      quantizedFloat32Bytes += 4 * layer.paramsPerOutChannel;
      scales += 4;
    }
    if (layerQuantized && bits.actBits.some((b) => b !== 32)) scales += 4;
  });
  const quantizedWeightBytes = Math.ceil(quantBits / 8);
  const scaleAndTableBytes = scales + 4 * tableCount.alphas;
  const fullPrecisionBytes = fpBytes - quantizedFloat32Bytes;
  return { quantizedWeightBytes, scaleAndTableBytes, fullPrecisionBytes, totalBytes: quantizedWeightBytes + scaleAndTableBytes + fullPrecisionBytes, fpBytes };
}
