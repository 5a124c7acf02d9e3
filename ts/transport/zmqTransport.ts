// ZeroMQ DEALER talking to the worker's ROUTER. zeromq.js allows one pending receive and one pending
// send per socket, so there is exactly one receive loop and one send queue here.
import { Dealer } from "zeromq";
import { FrameTransport } from "./frameTransport.js";
import { TransportClosedError } from "./transport.js";

export interface ZmqOptions {
  /** ZMTP heartbeat interval; a peer silent for 3 intervals is considered gone. 0 disables. */
  heartbeatMs?: number;
  /** Remote workers only: how long a lost connection may stay lost before the transport closes. */
  reconnectGraceMs?: number;
  /**
   * Watch the socket's connection events to notice a lost peer (remote workers). Off for a worker this process
   * spawned, whose exit is noticed directly: zeromq.js leaks three eventfds per socket whose event observer was
   * ever created, closed or not, so a long-lived orchestrator must not create one per spawned worker.
   */
  watchConnection?: boolean;
}

export class ZmqTransport extends FrameTransport {
  readonly kind = "zmq";
  private readonly socket: Dealer;
  private lostTimer: NodeJS.Timeout | undefined;

  private constructor(readonly address: string, private readonly options: Required<ZmqOptions>) {
    super();
    const hb = options.heartbeatMs;
    this.socket = new Dealer({
      linger: 0,
      heartbeatInterval: hb,
      heartbeatTimeout: hb * 3,
      heartbeatTimeToLive: hb * 3,
      reconnectInterval: 100,
      receiveHighWaterMark: 0,
      sendHighWaterMark: 0,
    });
  }

  static connect(endpoint: string, options: ZmqOptions = {}): ZmqTransport {
    const t = new ZmqTransport(endpoint, { heartbeatMs: 500, reconnectGraceMs: 2000, watchConnection: true, ...options });
    t.socket.connect(endpoint);
    if (t.options.watchConnection) void t.watchConnection();
    void t.receiveLoop();
    return t;
  }

  protected write(frame: Uint8Array): Promise<void> {
    return this.socket.send(frame);
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [frame] of this.socket) {
        if (frame) this.deliver(frame);
      }
    } catch (err) {
      if (!this.closed) this.finish(new TransportClosedError(`zmq receive from ${this.address} failed: ${(err as Error).message}`));
    }
  }

  // A heartbeat timeout shows up as a disconnect; ZeroMQ would reconnect forever, so give up after a grace period.
  // (Our own loop over the observer: its event-emitter mode leaves a rejected promise behind on close.)
  private async watchConnection(): Promise<void> {
    try {
      for await (const event of this.socket.events) {
        if (event.type === "disconnect" && !this.closed && !this.lostTimer) {
          this.lostTimer = setTimeout(() => {
            this.finish(new TransportClosedError(
              `lost the connection to the worker at ${this.address} (no heartbeat for ${this.options.reconnectGraceMs} ms)`));
          }, this.options.reconnectGraceMs);
          this.lostTimer.unref();
        } else if (event.type === "connect") {
          clearTimeout(this.lostTimer);
          this.lostTimer = undefined;
        }
      }
    } catch {
      // the observer ends when the socket closes
    }
  }

  protected release(): void {
    clearTimeout(this.lostTimer);
    if (this.options.watchConnection) {
      try {
        this.socket.events.close();
      } catch {
        // already closed
      }
    }
    this.socket.close();
  }
}
