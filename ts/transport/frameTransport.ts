// What every transport shares: one frame listener, one close listener, frames sent in order through one
// queue (a failed send fails its caller, never the frames behind it), and closing exactly once.
import { Transport, TransportClosedError } from "./transport.js";

export abstract class FrameTransport implements Transport {
  abstract readonly kind: string;
  abstract readonly address: string;
  private sendQueue: Promise<void> = Promise.resolve();
  private frameListener: (frame: Uint8Array) => void = () => {};
  private closeListener: (reason: Error) => void = () => {};
  protected closed = false;

  /** Hands one frame to the socket or pipe; resolves once it is handed over. */
  protected abstract write(frame: Uint8Array): Promise<void>;
  /** Releases the socket or pipe; called once, before the close listener hears of it. */
  protected abstract release(): void;

  send(frame: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError(`${this.kind} transport to ${this.address} is closed`));
    const next = this.sendQueue.then(() => this.write(frame));
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
    this.finish(new TransportClosedError(`${this.kind} transport to ${this.address} was closed`));
  }

  protected deliver(frame: Uint8Array): void {
    this.frameListener(frame);
  }

  protected finish(reason: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    this.closeListener(reason);
  }
}
