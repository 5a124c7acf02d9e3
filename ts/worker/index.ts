export { WorkerClient, PROTOCOL_VERSION, type CallOptions, type ReplyOf, type RequestKind } from "./workerClient.js";
export { spawnTorchrunWorker, failedRankFrom, NCCL_HOST_ENV, type TorchrunOptions } from "./torchrunWorker.js";
export { spawnWorker, connectWorker, type SpawnOptions, type WorkerHandle, type TransportKind } from "./workerHandle.js";
export { WorkerRequestError, WorkerExitedError, DeadlineExceededError, ProtocolMismatchError } from "./errors.js";
export { workerPython, projectRoot } from "./pythonEnv.js";
