"""python -m dmbq_worker.export: write a run's model as a .dmbq file, reload it, check it, export ONNX.

  python -m dmbq_worker.export RUN_DIR --out model.dmbq [--evaluate] [--onnx model.onnx] [--device cpu|cuda]
  python -m dmbq_worker.export --check model.dmbq [--evaluate] [--onnx model.onnx]
  python -m dmbq_worker.export --untrained resnet18 --weight-bits 2 --out r18-w2.dmbq

Prints one JSON object on stdout (the summary; keys in camelCase); errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmbq_worker.export.container import DmbqFileError, read_dmbq
from dmbq_worker.export.evaluate import model_predictions
from dmbq_worker.export.loader import load_dmbq_file
from dmbq_worker.export.untrained import export_untrained
from dmbq_worker.export.writer import INPUT_SHAPES, export_run, summary_dict


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmbq_worker.export", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", nargs="?", help="run folder (config.json, checkpoints/latest.json)")
    p.add_argument("--out", help="the .dmbq file to write")
    p.add_argument("--check", metavar="FILE", help="read an existing .dmbq file instead of exporting")
    p.add_argument("--untrained", metavar="MODEL", help="export a zoo model with untrained weights")
    p.add_argument("--weight-bits", type=int, default=2)
    p.add_argument("--act-bits", type=int, default=2)
    p.add_argument("--dataset", default="", help="--untrained: input shape and classes (default by model)")
    p.add_argument("--evaluate", action="store_true", help="reload the file and score it on the test split")
    p.add_argument("--onnx", metavar="FILE", help="also write the dequantized model as ONNX and compare it")
    p.add_argument("--device", default="cpu", help="where the reloaded model runs (cpu, cuda, cuda:N)")
    p.add_argument("--data-path", default=None, help="dataset folder, if not the one the run used")
    p.add_argument("--allow-factory", action="store_true", help="allow a custom model factory to be imported")
    return p


def _file_summary(path: str) -> dict[str, Any]:
    f = read_dmbq(path)
    sizes = f.header.get("sizes", {})
    return {
        "out": str(Path(path).resolve()), "fileBytes": f.file_bytes, "sizeMb": f.file_bytes / 1e6,
        "fpSizeMb": sizes.get("fp32_model", 0) / 1e6, "fp32Bytes": sizes.get("fp32_model", 0),
        "headerBytes": f.header_bytes, "bitPlaneBytes": sizes.get("bit_planes", 0),
        "tablesAndScalesBytes": sizes.get("tables_and_scales", 0),
        "fullPrecisionBytes": sizes.get("full_precision", 0), "top1": f.header.get("run", {}).get("top1"),
        "layers": len(f.header.get("layers", [])),
    }


def _check(path: str, args: argparse.Namespace, out: dict[str, Any]) -> None:
    device = torch.device(args.device)
    loaded = load_dmbq_file(path, device=device, allow_factory=args.allow_factory)
    dataset = loaded.header["dataset"]
    if args.evaluate:
        preds = model_predictions(loaded.model, dataset, device=device, data_path=args.data_path)
        out["reloadedTop1"] = preds.top1
        out["evaluatedSamples"] = int(preds.labels.size)
        out["evaluatedOn"] = str(device)
        if isinstance(out.get("top1"), (int, float)):
            out["top1Delta"] = preds.top1 - float(out["top1"])
    if args.onnx:
        from dmbq_worker.export.onnx_export import export_onnx, onnx_operators, onnx_predictions

        cpu_model = load_dmbq_file(path, device="cpu", allow_factory=args.allow_factory).model
        size = export_onnx(cpu_model, loaded.header["model"]["input_shape"], args.onnx)
        report: dict[str, Any] = {"path": str(Path(args.onnx).resolve()), "bytes": size,
                                  "operators": onnx_operators(args.onnx)}
        if args.evaluate:
            ref = model_predictions(cpu_model, dataset, device=torch.device("cpu"), data_path=args.data_path)
            got = onnx_predictions(args.onnx, dataset, data_path=args.data_path)
            report["agreement"] = float((ref.predicted == got.predicted).mean()) if ref.labels.size else None
            report["top1"] = got.top1
            report["samples"] = int(got.labels.size)
        out["onnx"] = report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    try:
        if args.check:
            path = args.check
            out = _file_summary(path)
        elif args.untrained:
            if not args.out:
                raise ValueError("--out: the .dmbq file to write is required")
            dataset = args.dataset or ("imagefolder" if args.untrained in ("resnet18", "resnet34") else
                                       "digits" if args.untrained == "digits_cnn" else "cifar10")
            classes = 1000 if dataset == "imagefolder" else 10
            summary = export_untrained(args.untrained, args.out, weight_bits=args.weight_bits, act_bits=args.act_bits,
                                       num_classes=classes, input_shape=INPUT_SHAPES[dataset], dataset=dataset)
            path, out = args.out, summary_dict(summary)
        else:
            if not args.run_dir:
                raise ValueError("RUN_DIR: a run folder is required (or --check FILE / --untrained MODEL)")
            if not args.out:
                raise ValueError("--out: the .dmbq file to write is required")
            summary = export_run(args.run_dir, args.out)
            path, out = args.out, summary_dict(summary)
        if args.evaluate or args.onnx:
            _check(path, args, out)
    except (DmbqFileError, ValueError, FileNotFoundError) as exc:
        print(f"dmbq export: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the worker's own errors (WorkerError) carry their field
        print(f"dmbq export: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
