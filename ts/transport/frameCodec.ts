// Length-prefixed framing for byte streams (stdio): a little-endian uint32 length, then the frame.

export const MAX_FRAME_BYTES = 512 * 1024 * 1024;

export function encodeFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + frame.length);
  out.writeUInt32LE(frame.length, 0);
  out.set(frame, 4);
  return out;
}

/** Accumulates stream chunks and yields whole frames; keeps partial data across chunks. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Uint8Array[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = head.readUInt32LE(0);
      if (length > MAX_FRAME_BYTES) throw new Error(`stream frame of ${length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
      if (this.buffered < 4 + length) break;
      const whole = this.take(4 + length);
      frames.push(whole.subarray(4));
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
