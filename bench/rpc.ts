// npm run bench:rpc — round-trip latency of the contract over each transport, against a real worker.
// Prints a table: median and p90 of a small Echo, and of a 4 MiB Echo (payload both ways).
import { spawnWorker, type TransportKind } from "../ts/worker/index.js";

const SMALL_N = Number(process.env.BENCH_SMALL_N ?? 2000);
const BIG_N = Number(process.env.BENCH_BIG_N ?? 40);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function measure(kind: TransportKind) {
  const w = await spawnWorker({ transport: kind });
  try {
    const small = Buffer.from("ping");
    const big = Buffer.alloc(4 << 20, 0x5a);
    for (let i = 0; i < 200; i++) await w.client.echo(small);
    for (let i = 0; i < 3; i++) await w.client.echo(big);
    const smallUs: number[] = [];
    for (let i = 0; i < SMALL_N; i++) {
      const t = process.hrtime.bigint();
      await w.client.echo(small);
      smallUs.push(Number(process.hrtime.bigint() - t) / 1e3);
    }
    const bigMs: number[] = [];
    for (let i = 0; i < BIG_N; i++) {
      const t = process.hrtime.bigint();
      await w.client.echo(big);
      bigMs.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    return { kind, smallMed: quantile(smallUs, 0.5), smallP90: quantile(smallUs, 0.9), bigMed: quantile(bigMs, 0.5), bigP90: quantile(bigMs, 0.9) };
  } finally {
    await w.close();
  }
}

const rows = [];
for (const kind of ["zmq", "stdio"] as TransportKind[]) rows.push(await measure(kind));
console.log(`rpc round trips (Echo; ${SMALL_N} small, ${BIG_N} x 4 MiB each way), worker ${process.env.DMBQ_PYTHON ?? "py_worker/.venv"}`);
console.log("| transport | small median (µs) | small p90 (µs) | 4 MiB median (ms) | 4 MiB p90 (ms) |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.kind} | ${r.smallMed.toFixed(0)} | ${r.smallP90.toFixed(0)} | ${r.bigMed.toFixed(2)} | ${r.bigP90.toFixed(2)} |`);
}
