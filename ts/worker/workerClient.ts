// The typed client of the contract. It owns request ids and correlation; it does not know how frames travel.
// One request may receive many responses (progress events, final=false) before its final reply.
import {
  Cancelled, CheckpointLoaded, CheckpointSaved, Configure, Configured, EchoReply, EpochResult, EvalResult, Evaluate,
  BatchNormRecalibrated, HelloReply, LoadCheckpoint, Progress, ProtocolVersion, RecalibrateBatchNorm, Request, Response, Run,
  SaveCheckpoint, SchemeApplied, ShutdownAck, UpdateScheme,
} from "../gen/dmbq.js";
import type { Transport } from "../transport/transport.js";
import { DeadlineExceededError, ProtocolMismatchError, WorkerRequestError } from "./errors.js";

type RequestBody = NonNullable<Request["body"]>;
type ResponseBody = NonNullable<Response["body"]>;
export type RequestKind = RequestBody["$case"];
export type RequestValue<K extends RequestKind> = Extract<RequestBody, { $case: K }>["value"];

/** What each request completes with. A cancelled request completes with Cancelled. */
export interface ReplyOf {
  hello: HelloReply;
  configure: Configured;
  run: EpochResult | Cancelled;
  updateScheme: SchemeApplied;
  evaluate: EvalResult;
  recalibrateBatchNorm: BatchNormRecalibrated;
  saveCheckpoint: CheckpointSaved;
  loadCheckpoint: CheckpointLoaded;
  shutdown: ShutdownAck;
  echo: EchoReply | Cancelled;
  cancel: Cancelled;
}

export interface CallOptions {
  /** Reject if no final reply within this many ms (0: no deadline). */
  deadlineMs?: number;
  onProgress?: (p: Progress) => void;
  /** Aborting sends a Cancel; the request then completes with Cancelled at the worker's next step boundary. */
  signal?: AbortSignal;
}

interface Pending {
  kind: RequestKind;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (p: Progress) => void;
  timer?: NodeJS.Timeout;
  cleanup: () => void;
}

export const PROTOCOL_VERSION = ProtocolVersion.PROTOCOL_VERSION_CURRENT as number;
const CLIENT_NAME = "dmbq-ts/0.1.0";
const CONTROL_DEADLINE_MS = 120_000;

export class WorkerClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;
  /** Responses that answer no known request (e.g. a malformed frame's error, id 0). */
  readonly unsolicited: Response[] = [];

  constructor(readonly transport: Transport) {
    transport.onFrame((frame) => this.receive(frame));
    transport.onClose((reason) => this.fail(reason));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Sends one request and resolves with its final reply; progress events go to opts.onProgress. */
  request<K extends RequestKind>(kind: K, value: RequestValue<K>, opts: CallOptions = {}): Promise<ReplyOf[K]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.allocateId();
    const frame = Request.encode({ id, body: { $case: kind, value } as RequestBody }).finish();
    return new Promise<ReplyOf[K]>((resolve, reject) => {
      const onAbort = () => void this.cancel(id).catch(() => {});
      const entry: Pending = {
        kind,
        resolve: resolve as (v: unknown) => void,
        reject,
        cleanup: () => {
          clearTimeout(entry.timer);
          opts.signal?.removeEventListener("abort", onAbort);
        },
      };
      if (opts.onProgress) entry.onProgress = opts.onProgress;
      if (opts.deadlineMs && opts.deadlineMs > 0) {
        const ms = opts.deadlineMs;
        entry.timer = setTimeout(() => this.settle(id, new DeadlineExceededError(`${kind} #${id}`, ms)), ms);
        entry.timer.unref();
      }
      if (opts.signal) {
        if (opts.signal.aborted) queueMicrotask(onAbort);
        else opts.signal.addEventListener("abort", onAbort, { once: true });
      }
      this.pending.set(id, entry);
      this.transport.send(frame).catch((err: Error) => this.settle(id, err));
    });
  }

  // ------------------------------------------------------------------ the contract, one method per request

  /** The handshake: refuses a worker of another protocol version with an error naming both. */
  async hello(deadlineMs = CONTROL_DEADLINE_MS): Promise<HelloReply> {
    let reply: HelloReply;
    try {
      reply = await this.request("hello", { protocolVersion: PROTOCOL_VERSION, client: CLIENT_NAME }, { deadlineMs });
    } catch (err) {
      if (err instanceof WorkerRequestError && err.field === "hello.protocol_version") {
        const m = /worker speaks version (\d+)/.exec(err.message);
        throw new ProtocolMismatchError(PROTOCOL_VERSION, m ? Number(m[1]) : -1, "refused by the worker");
      }
      throw err;
    }
    if (reply.protocolVersion !== PROTOCOL_VERSION) throw new ProtocolMismatchError(PROTOCOL_VERSION, reply.protocolVersion);
    return reply;
  }

  configure(c: Partial<Configure>, opts: CallOptions = {}): Promise<Configured> {
    return this.request("configure", Configure.fromPartial(c), { deadlineMs: 0, ...opts });
  }

  run(r: Partial<Run>, opts: CallOptions = {}): Promise<EpochResult | Cancelled> {
    return this.request("run", Run.fromPartial(r), opts);
  }

  updateScheme(u: Partial<UpdateScheme>, opts: CallOptions = {}): Promise<SchemeApplied> {
    return this.request("updateScheme", UpdateScheme.fromPartial(u), { deadlineMs: CONTROL_DEADLINE_MS, ...opts });
  }

  evaluate(e: Partial<Evaluate> = {}, opts: CallOptions = {}): Promise<EvalResult> {
    return this.request("evaluate", Evaluate.fromPartial(e), opts);
  }

  /** Recomputes every BatchNorm's running statistics for the current weights (see RecalibrateBatchNorm). */
  recalibrateBatchNorm(r: Partial<RecalibrateBatchNorm> = {}, opts: CallOptions = {}): Promise<BatchNormRecalibrated> {
    return this.request("recalibrateBatchNorm", RecalibrateBatchNorm.fromPartial(r), opts);
  }

  saveCheckpoint(s: Partial<SaveCheckpoint>, opts: CallOptions = {}): Promise<CheckpointSaved> {
    return this.request("saveCheckpoint", SaveCheckpoint.fromPartial(s), { deadlineMs: CONTROL_DEADLINE_MS, ...opts });
  }

  loadCheckpoint(l: Partial<LoadCheckpoint>, opts: CallOptions = {}): Promise<CheckpointLoaded> {
    return this.request("loadCheckpoint", LoadCheckpoint.fromPartial(l), { deadlineMs: CONTROL_DEADLINE_MS, ...opts });
  }

  echo(payload: Buffer, opts: CallOptions & { delayMs?: number } = {}): Promise<EchoReply | Cancelled> {
    return this.request("echo", { payload, delayMs: opts.delayMs ?? 0 }, opts);
  }

  cancel(target: number): Promise<Cancelled> {
    return this.request("cancel", { target }, { deadlineMs: CONTROL_DEADLINE_MS });
  }

  shutdown(deadlineMs = 10_000): Promise<ShutdownAck> {
    return this.request("shutdown", {}, { deadlineMs });
  }

  /** Rejects every pending request and every later one with `reason` (the supervisor calls this on worker death). */
  fail(reason: Error): void {
    if (!this.failure) this.failure = reason;
    for (const id of [...this.pending.keys()]) this.settle(id, this.failure);
  }

  // ------------------------------------------------------------------ internals

  private allocateId(): number {
    // uint32 ids, skipping 0 (reserved for replies to unparseable frames) and any still in flight.
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.pending.has(this.nextId));
    return this.nextId;
  }

  private receive(frame: Uint8Array): void {
    let response: Response;
    try {
      response = Response.decode(frame);
    } catch (err) {
      this.unsolicited.push(Response.fromPartial({ id: 0, final: true, body: { $case: "error", value: { message: `undecodable frame: ${(err as Error).message}` } } }));
      return;
    }
    const entry = this.pending.get(response.id);
    const body = response.body as ResponseBody | undefined;
    if (!entry || !body) {
      this.unsolicited.push(response);
      return;
    }
    if (!response.final) {
      if (body.$case === "progress") entry.onProgress?.(body.value);
      return;
    }
    if (body.$case === "error") this.settle(response.id, new WorkerRequestError(`${entry.kind} #${response.id}`, body.value));
    else this.settle(response.id, undefined, body.value);
  }

  private settle(id: number, error: Error | undefined, value?: unknown): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    entry.cleanup();
    if (error) entry.reject(error);
    else entry.resolve(value);
  }
}
