// The worker as a child process speaking length-prefixed protobuf on its stdin/stdout.
import type { Readable, Writable } from "node:stream";
import { encodeFrame, FrameDecoder } from "./frameCodec.js";
import { Transport, TransportClosedError } from "./transport.js";

export class StdioTransport implements Transport {
  readonly kind = "stdio";
  private readonly decoder = new FrameDecoder();
  private sendQueue: Promise<void> = Promise.resolve();
  private frameListener: (frame: Uint8Array) => void = () => {};
  private closeListener: (reason: Error) => void = () => {};
  private closed = false;

  constructor(readonly address: string, private readonly input: Readable, private readonly output: Writable) {
    input.on("data", (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        this.finish(new TransportClosedError(`stdio stream from ${address} is corrupt: ${(err as Error).message}`));
        return;
      }
      for (const f of frames) this.frameListener(f);
    });
    input.on("end", () => this.finish(new TransportClosedError(`the worker (${address}) closed its stdout`)));
    input.on("error", (err) => this.finish(new TransportClosedError(`stdio read from ${address} failed: ${err.message}`)));
    output.on("error", (err) => this.finish(new TransportClosedError(`stdio write to ${address} failed: ${err.message}`)));
  }

  send(frame: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError(`stdio transport to ${this.address} is closed`));
    const next = this.sendQueue.then(
      () =>
        new Promise<void>((resolve, reject) => {
          // Resolve on flush, so a caller that sends megabytes is paced by the pipe (back-pressure).
          this.output.write(encodeFrame(frame), (err) => (err ? reject(err) : resolve()));
        }),
    );
    this.sendQueue = next.catch(() => {});
    return next;
  }

  onFrame(listener: (frame: Uint8Array) => void): void {
    this.frameListener = listener;
  }

  onClose(listener: (reason: Error) => void): void {
    this.closeListener = listener;
  }

  async close(): Promise<void> {
    if (!this.closed) this.output.end();
    this.finish(new TransportClosedError(`stdio transport to ${this.address} was closed`));
  }

  private finish(reason: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeListener(reason);
  }
}
