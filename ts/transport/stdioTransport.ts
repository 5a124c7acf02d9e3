// The worker as a child process speaking length-prefixed protobuf on its stdin/stdout.
import type { Readable, Writable } from "node:stream";
import { encodeFrame, FrameDecoder } from "./frameCodec.js";
import { FrameTransport } from "./frameTransport.js";
import { TransportClosedError } from "./transport.js";

export class StdioTransport extends FrameTransport {
  readonly kind = "stdio";
  private readonly decoder = new FrameDecoder();

  constructor(readonly address: string, private readonly input: Readable, private readonly output: Writable) {
    super();
    input.on("data", (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        this.finish(new TransportClosedError(`stdio stream from ${address} is corrupt: ${(err as Error).message}`));
        return;
      }
      for (const f of frames) this.deliver(f);
    });
    input.on("end", () => this.finish(new TransportClosedError(`the worker (${address}) closed its stdout`)));
    input.on("error", (err) => this.finish(new TransportClosedError(`stdio read from ${address} failed: ${err.message}`)));
    output.on("error", (err) => this.finish(new TransportClosedError(`stdio write to ${address} failed: ${err.message}`)));
  }

  protected write(frame: Uint8Array): Promise<void> {
    // Resolve on flush, so a caller that sends megabytes is paced by the pipe (back-pressure).
    return new Promise<void>((resolve, reject) => {
      this.output.write(encodeFrame(frame), (err) => (err ? reject(err) : resolve()));
    });
  }

  protected release(): void {
    if (!this.output.writableEnded) this.output.end();
  }
}
