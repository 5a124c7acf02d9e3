// One interface for every way of reaching a worker. A transport moves opaque frames (one serialized
// Request or Response each) and reports when the peer is gone; it knows nothing of the protocol.
// The client (ts/worker/workerClient.ts) sits on top and never sees sockets or pipes.

export interface Transport {
  /** "zmq" or "stdio": for messages and benchmarks. */
  readonly kind: string;
  /** Where it goes, for messages (an endpoint, or "stdio:<pid>"). */
  readonly address: string;
  /** Queues a frame; resolves once handed to the socket or pipe (frames keep their order). */
  send(frame: Uint8Array): Promise<void>;
  /** Every frame from the peer, in order. One listener. */
  onFrame(listener: (frame: Uint8Array) => void): void;
  /** Called once when the transport can no longer reach the peer (EOF, heartbeat timeout, close). */
  onClose(listener: (reason: Error) => void): void;
  close(): Promise<void>;
}

export class TransportClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TransportClosedError";
  }
}
