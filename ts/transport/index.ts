export type { Transport } from "./transport.js";
export { TransportClosedError } from "./transport.js";
export { ZmqTransport, type ZmqOptions } from "./zmqTransport.js";
export { StdioTransport } from "./stdioTransport.js";
export { encodeFrame, FrameDecoder, MAX_FRAME_BYTES } from "./frameCodec.js";
