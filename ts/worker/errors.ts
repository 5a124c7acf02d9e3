// Errors a caller of the worker can tell apart: the worker said no, the worker died, or no answer came in time.
import { ErrorCode } from "../gen/dmbq.js";
import type { Error as ErrorReply } from "../gen/dmbq.js";

/** The worker answered with a typed Error reply. */
export class WorkerRequestError extends Error {
  readonly code: ErrorCode;
  readonly field: string;
  readonly details: string;
  readonly epoch: number;
  readonly step: number;

  constructor(readonly request: string, reply: ErrorReply) {
    super(`${request} failed (${ErrorCode[reply.code] ?? reply.code}): ${reply.message}`);
    this.name = "WorkerRequestError";
    this.code = reply.code;
    this.field = reply.field;
    this.details = reply.details;
    this.epoch = reply.epoch;
    this.step = reply.step;
  }
}

/** The worker process is gone: every pending request rejects with this. */
export class WorkerExitedError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stderrTail: string,
  ) {
    super(stderrTail ? `${message}\n--- last lines of the worker's stderr ---\n${stderrTail}` : message);
    this.name = "WorkerExitedError";
  }
}

export class DeadlineExceededError extends Error {
  constructor(request: string, ms: number) {
    super(`${request} got no reply within its ${ms} ms deadline`);
    this.name = "DeadlineExceededError";
  }
}

export class ProtocolMismatchError extends Error {
  constructor(readonly orchestratorVersion: number, readonly workerVersion: number, detail = "") {
    super(
      `protocol mismatch: this orchestrator speaks dmbq protocol version ${orchestratorVersion}, ` +
        `the worker speaks version ${workerVersion}${detail ? ` (${detail})` : ""}. Install matching versions of dmbq and dmbq-worker.`,
    );
    this.name = "ProtocolMismatchError";
  }
}
