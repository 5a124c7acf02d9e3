"""ResNet-20 (or VGG-small: --model vgg_small) W2/A2 on CIFAR-10 with 1 GPU, then with 2 GPUs (torchrun, DDP over NCCL): epoch time, images/s,
scaling efficiency, and the two runs' train-loss / test-accuracy trajectories side by side.

    python3 bench/ddp_scaling.py --data $CIFAR10_DIR --epochs 4 --out /tmp/ddp-scaling
    # CPU smoke test (gloo processes instead of GPUs, one thread each):
    python3 bench/ddp_scaling.py --data $CIFAR10_DIR --device cpu --epochs 3 --train-limit 1024 \\
        --test-limit 512 --batch-size 64 --out /tmp/ddp-scaling-cpu

Each configuration is the real worker, driven over its ZeroMQ contract as the orchestrator drives it: one Configure,
one UpdateScheme, then one Run per epoch with the LBA sensitivities collected every step (what the orchestrator asks
while the policy is learning) and an evaluation on the test split.
* "1 GPU": the plain worker (`python -m dmbq_worker`), what a one-GPU experiment runs (its step is a CUDA graph).
* "2 GPUs": `torchrun --nproc-per-node 2 -m dmbq_worker`: DDP, global-batch BatchNorm and statistics.
* "1 GPU (DDP)" (--configs plain,ddp1,ddp2): the same job with one rank: DDP's own cost, for reference.
The global batch (--batch-size, default 256) and the LR schedule are the same for every configuration; with 2 GPUs
each trains on half of each global batch, so an epoch is the same work. Epoch time = the training steps of the Run
(EpochResult.seconds, evaluation excluded), median over the epochs after the first (allocation, cuDNN autotuning,
graph capture). Scaling efficiency = T(1 GPU) / (2 x T(2 GPUs)).
NVLink multicast stays off in every job (NCCL_NVLS_ENABLE=0; docs of the device). Output: a markdown table on stdout
and in OUT/ddp_scaling.md, everything measured in OUT/ddp_scaling.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py_worker"))

import zmq  # noqa: E402

from dmbq_worker.proto import dmbq_pb2 as pb  # noqa: E402

# NVLink multicast (NVLS) stays off on the GPU hosts (and costs nothing elsewhere).
NCCL_HOST_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
LAPLACE_2BIT_ALPHA = [1.594, 1.0]  # the DMBQ 2-bit table of the Laplace law (levels in units of mean|w|)
MODEL_LABELS = {"resnet20": "ResNet-20", "vgg_small": "VGG-small"}  # --model choices, as the caption names them


@dataclass(frozen=True)
class Launch:
    key: str  # "plain", "ddp1", "ddp2"
    label: str
    ranks: int
    torchrun: bool


LAUNCHES = {
    "plain": Launch("plain", "1 GPU", 1, False),
    "ddp1": Launch("ddp1", "1 GPU (DDP)", 1, True),
    "ddp2": Launch("ddp2", "2 GPUs", 2, True),
}


@dataclass
class EpochRow:
    epoch: int
    seconds: float  # training steps only
    wall_s: float  # the whole Run request: steps, evaluation, statistics
    images_per_s: float
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    lr: float
    step_mode: str  # "cuda graph", "eager", "eager (capture failed: ...)" (EpochResult.step_mode)


@dataclass
class ConfigResult:
    key: str
    label: str
    ranks: int
    global_batch: int
    per_rank_batch: int
    device: str
    torch_version: str
    world_size: int
    steps_per_epoch: int
    startup_s: float
    epochs: list[EpochRow] = field(default_factory=list)

    @property
    def timed(self) -> list[EpochRow]:
        return self.epochs[1:] if len(self.epochs) > 1 else self.epochs

    @property
    def median_epoch_s(self) -> float:
        return statistics.median(e.seconds for e in self.timed)

    @property
    def images_per_s(self) -> float:
        return statistics.median(e.images_per_s for e in self.timed)


# ---------------------------------------------------------------- the worker, over its contract


class WorkerProcess:
    """A worker (plain or a torchrun job) on a private ipc socket, and a DEALER to it."""

    def __init__(self, launch: Launch, python: str, env: dict[str, str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="dmbq-scaling-")
        endpoint = f"ipc://{self._dir.name}/worker.sock"
        self.stderr_path = Path(self._dir.name) / "stderr.txt"
        if launch.torchrun:
            args = [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={launch.ranks}",
                    "--monitor-interval=0.5", "-m", "dmbq_worker", "--listen", endpoint]
        else:
            args = [python, "-m", "dmbq_worker", "--listen", endpoint]
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                        start_new_session=True)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._next_id = 1

    def call(self, timeout_s: float, **body: Any) -> pb.Response:
        rid = self._next_id
        self._next_id += 1
        self._sock.send(pb.Request(id=rid, **body).SerializeToString())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._sock.poll(200):
                resp = pb.Response.FromString(self._sock.recv())
                if resp.id == rid and resp.final:
                    if resp.WhichOneof("body") == "error":
                        raise RuntimeError(f"worker error on {next(iter(body))}: {resp.error.message}\n"
                                           f"{resp.error.details}\n{self.stderr_tail()}")
                    return resp
            elif self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.stderr_tail()}")
        raise TimeoutError(f"no reply to {next(iter(body))} in {timeout_s} s:\n{self.stderr_tail()}")

    def stderr_tail(self, chars: int = 4000) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.call(60, shutdown=pb.Shutdown())
                self.process.wait(60)
        except Exception:  # noqa: BLE001 - a worker that does not leave is ended below
            pass
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self._sock.close()
            self._ctx.term()
            self._stderr.close()
            self._dir.cleanup()


# ---------------------------------------------------------------- the experiment


def f32(values: list[float]) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def binary_table(bits: int) -> list[float]:
    # binary-weighted alphas: 2^bits evenly spaced levels (8 bits at the first and last layer)
    return [1.6 * 2.0 ** (-i) for i in range(bits)]


def w2a2_scheme(layers: list[pb.LayerInfo]) -> pb.QuantScheme:
    """2 bits per channel in weights (DMBQ Laplace table) and activations (uniform, learned clip) in the body;
    the first and last layers at 8 bits, the image itself unquantized."""
    scheme = pb.QuantScheme()
    for info in layers:
        edge = info.role in (pb.LAYER_ROLE_FIRST, pb.LAYER_ROLE_LAST)
        bits = 8 if edge else 2
        scheme.layers.append(pb.LayerScheme(
            name=info.name, weight_bits_u8=bytes([bits]) * info.out_channels,
            act_bits_u8=b"" if info.role == pb.LAYER_ROLE_FIRST else bytes([bits]) * info.in_channels,
            act_mode=pb.ACT_MODE_UNIFORM,
        ))
    scheme.weight_tables.append(pb.LevelTable(bits=2, alpha_f32=f32(LAPLACE_2BIT_ALPHA)))
    for bits in (1, 7, 8):  # 8 for the edges; 1 and 7: the tables one bit lower (look-ahead)
        scheme.weight_tables.append(pb.LevelTable(bits=bits, alpha_f32=f32(binary_table(bits))))
    return scheme


def configure_request(args: argparse.Namespace) -> pb.Configure:
    return pb.Configure(
        model=pb.ModelSpec(name=args.model),
        dataset=pb.DatasetSpec(name=args.dataset, path=args.data, batch_size=args.batch_size, augment=True,
                               train_limit=args.train_limit, test_limit=args.test_limit),
        optimizer=pb.OptimizerSpec(name="sgd", lr=args.lr, momentum=0.9, weight_decay=1e-4),
        schedule=pb.ScheduleSpec(kind="cosine", epochs=args.epochs),
        seed=args.seed, device=args.device, precision=args.precision,
        init_weights=args.init or "",
    )


def job_env(args: argparse.Namespace) -> dict[str, str]:
    py_path = [str(ROOT / "py_worker")] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {**os.environ, **NCCL_HOST_ENV, "PYTHONPATH": ":".join(py_path), "PYTHONUNBUFFERED": "1"}
    if args.device == "cpu":
        # one core per process: "N GPUs" becomes N gloo processes on N cores
        env.update({"DMBQ_DIST_BACKEND": "gloo", "OMP_NUM_THREADS": "1"})
    return env


def run_config(launch: Launch, args: argparse.Namespace) -> ConfigResult:
    if args.device == "cpu":  # the same jobs, with processes where the GPUs would be
        label = {"plain": "1 process", "ddp1": "1 process (DDP)", "ddp2": "2 processes"}[launch.key]
        launch = Launch(launch.key, label, launch.ranks, launch.torchrun)
    print(f"== {launch.label}: {'torchrun ' + str(launch.ranks) + ' ranks' if launch.torchrun else 'plain worker'}",
          file=sys.stderr, flush=True)
    started = time.perf_counter()
    worker = WorkerProcess(launch, args.python, job_env(args))
    try:
        hello = worker.call(args.start_timeout_s, hello=pb.Hello(protocol_version=pb.PROTOCOL_VERSION_CURRENT))
        caps = hello.hello.capabilities
        configured = worker.call(args.request_timeout_s, configure=configure_request(args)).configured
        worker.call(args.request_timeout_s, update_scheme=pb.UpdateScheme(scheme=w2a2_scheme(list(configured.layers))))
        result = ConfigResult(
            key=launch.key, label=launch.label, ranks=launch.ranks, global_batch=args.batch_size,
            per_rank_batch=args.batch_size // launch.ranks, device=configured.device,
            torch_version=caps.torch_version, world_size=caps.world_size or 1,
            steps_per_epoch=configured.steps_per_epoch, startup_s=time.perf_counter() - started,
        )
        run = pb.Run(steps=0, sensitivity=args.sensitivity, lookahead=False, histogram_bins=0, evaluate=True)
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            r = worker.call(args.request_timeout_s, run=run).epoch_result
            row = EpochRow(epoch=r.epoch, seconds=r.seconds, wall_s=time.perf_counter() - t0,
                           images_per_s=r.samples_per_s, train_loss=r.train_loss, train_accuracy=r.train_accuracy,
                           test_loss=r.test_loss, test_accuracy=r.test_accuracy, lr=r.lr,
                           step_mode=r.step_mode)
            result.epochs.append(row)
            print(f"   epoch {row.epoch}: {row.seconds:.2f} s ({row.images_per_s:.0f} img/s), train loss "
                  f"{row.train_loss:.4f}, test acc {100 * row.test_accuracy:.2f}%, step: {row.step_mode}", file=sys.stderr,
                  flush=True)
        return result
    finally:
        worker.close()


# ---------------------------------------------------------------- the report


def efficiency(one: ConfigResult, two: ConfigResult) -> float:
    return one.median_epoch_s / (two.ranks * two.median_epoch_s)


def markdown(results: dict[str, ConfigResult], meta: dict[str, Any]) -> str:
    unit, units = ("GPU", "GPUs") if meta["device_kind"] == "cuda" else ("process", "processes")
    lines = [
        f"{MODEL_LABELS[meta['model']]} W2/A2 (2-bit per-channel weights, DMBQ Laplace table; 2-bit activations; first/last layer 8 bits),"
        f" {meta['dataset']}, global batch {meta['global_batch']}, LR {meta['lr']} (cosine over {meta['epochs']} "
        f"epochs), {meta['precision']}, sensitivities {'on' if meta['sensitivity'] else 'off'}; {meta['machine']}; "
        f"torch {meta['torch_version']}; {meta['date']}; commit {meta['commit']}.",
        "",
        f"| configuration | {units} | batch per {unit} | epoch time (s, median of epochs 2..{meta['epochs']}) "
        f"| images/s | scaling efficiency | step (last epoch) |",
        "|---|---|---|---|---|---|---|",
    ]
    base = results.get("plain") or results.get("ddp1")
    for r in results.values():
        eff = "—"
        if base is not None and r.ranks > 1:
            eff = f"{efficiency(base, r):.2f} (vs {base.label})"
            if "ddp1" in results and base.key != "ddp1":
                eff += f", {efficiency(results['ddp1'], r):.2f} (vs {results['ddp1'].label})"
        step = r.epochs[-1].step_mode.replace("|", "/") if r.epochs else ""
        lines.append(f"| {r.label} | {r.ranks} | {r.per_rank_batch} | {r.median_epoch_s:.2f} | {r.images_per_s:.0f} "
                     f"| {eff} | {step} |")
    lines += ["", "| epoch | " + " | ".join(f"{r.label} train loss" for r in results.values()) + " | "
              + " | ".join(f"{r.label} test top-1 (%)" for r in results.values()) + " |",
              "|---|" + "---|" * (2 * len(results))]
    for i in range(meta["epochs"]):
        losses = [f"{r.epochs[i].train_loss:.4f}" if i < len(r.epochs) else "" for r in results.values()]
        accs = [f"{100 * r.epochs[i].test_accuracy:.2f}" if i < len(r.epochs) else "" for r in results.values()]
        lines.append(f"| {i + 1} | " + " | ".join(losses) + " | " + " | ".join(accs) + " |")
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_name(device: str, results: dict[str, ConfigResult]) -> str:
    if device == "cpu":
        return f"CPU ({os.cpu_count()} cores), one thread per process, gloo"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, check=True).stdout.split("\n")
        names = [n.strip() for n in out if n.strip()]
        return f"{len(names)} x {names[0]}, NCCL" if names else "CUDA"
    except (OSError, subprocess.CalledProcessError):
        return "CUDA"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("CIFAR10_DIR", ""),
                   help="folder holding cifar-10-batches-py (default $CIFAR10_DIR)")
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "synthetic"])
    p.add_argument("--model", default="resnet20", choices=list(MODEL_LABELS),
                   help="vgg_small: ~15x the arithmetic per image of resnet20, 50x the gradient bytes per step")
    p.add_argument("--epochs", type=int, default=4, help="epochs per configuration (>= 2: the first is not timed)")
    p.add_argument("--out", required=True, help="folder for ddp_scaling.json and ddp_scaling.md")
    p.add_argument("--batch-size", type=int, default=256, help="the GLOBAL batch, the same for every configuration")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when available")
    p.add_argument("--configs", default="plain,ddp2", help="comma list of plain, ddp1, ddp2 (in this order)")
    p.add_argument("--train-limit", type=int, default=0, help="first N training images only (0: all)")
    p.add_argument("--test-limit", type=int, default=0)
    p.add_argument("--init", default="", help="a checkpoint whose weights start every configuration (e.g. FP)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-sensitivity", dest="sensitivity", action="store_false")
    p.add_argument("--python", default=sys.executable, help="the interpreter of the workers")
    p.add_argument("--start-timeout-s", type=float, default=300)
    p.add_argument("--request-timeout-s", type=float, default=3600)
    args = p.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    if args.epochs < 1:
        p.error(f"--epochs: must be >= 1, got {args.epochs}")
    if args.dataset == "cifar10" and not args.data:
        p.error("--data: the CIFAR-10 folder is required (or set CIFAR10_DIR)")
    keys = [k for k in args.configs.split(",") if k]
    bad = [k for k in keys if k not in LAUNCHES]
    if bad or not keys:
        p.error(f"--configs: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(LAUNCHES)}")
    if any(args.batch_size % LAUNCHES[k].ranks for k in keys):
        p.error(f"--batch-size: {args.batch_size} does not split evenly over the ranks of {args.configs}")
    args.config_keys = keys
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {k: run_config(LAUNCHES[k], args) for k in args.config_keys}
    first = next(iter(results.values()))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(), "commit": git_commit(),
        "machine": machine_name(args.device, results), "device_kind": args.device, "torch_version": first.torch_version,
        "model": args.model, "dataset": args.dataset + (f" (first {args.train_limit} training images)" if args.train_limit else ""),
        "global_batch": args.batch_size, "lr": args.lr, "epochs": args.epochs, "precision": args.precision,
        "sensitivity": args.sensitivity, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    table = markdown(results, meta)
    summary = {
        "meta": meta,
        "configs": {k: {**{f: v for f, v in asdict(r).items() if f != "epochs"}, "median_epoch_s": r.median_epoch_s,
                        "images_per_s": r.images_per_s, "epochs": [asdict(e) for e in r.epochs]}
                    for k, r in results.items()},
        "scaling_efficiency": {
            f"{b}->{t}": efficiency(results[b], results[t])
            for b in ("plain", "ddp1") for t in ("ddp2",) if b in results and t in results
        },
    }
    (out / "ddp_scaling.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "ddp_scaling.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
