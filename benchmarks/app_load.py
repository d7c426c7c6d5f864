"""Load test of the Gradio demo: N concurrent ``/transfer`` requests through ``gradio_client``.

Starts ``python app.py`` on a free port (unless ``--url`` is given), sends one warm-up request,
then N requests at once, then one more request to check the app still answers. Prints
successes, failures and latency percentiles as a markdown table with the settings and machine.

    python benchmarks/app_load.py [--requests 32] [--url http://127.0.0.1:7860/] [--model ID]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import cpu_name

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]


def _load_app():
    spec = importlib.util.spec_from_file_location("geogan_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_inputs(folder: Path, source: str, exemplar: str, size: int) -> tuple[Path, Path]:
    from geogan_hf.samples import load_sample

    paths = []
    for name in (source, exemplar):
        path = folder / f"{name}.png"
        image = load_sample(name).image
        if size:
            image.thumbnail((size, size))
        image.save(path)
        paths.append(path)
    return paths[0], paths[1]


def run_load(url: str, source: Path, exemplar: Path, attribute: str, requests: int) -> dict:
    """Fires ``requests`` concurrent transfers; returns counts and per-request latencies (s)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, analytics_enabled=False, max_workers=requests)
    args = (handle_file(str(source)), handle_file(str(exemplar)), attribute, 1.0)
    warmup = time.perf_counter()
    client.predict(*args, api_name="/transfer")
    warmup = time.perf_counter() - warmup

    def timed_request(_: int) -> float:
        begin = time.perf_counter()
        client.predict(*args, api_name="/transfer")
        return time.perf_counter() - begin

    latencies, errors = [], []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=requests) as pool:
        futures = [pool.submit(timed_request, i) for i in range(requests)]
        for future in futures:
            try:
                latencies.append(future.result())
            except Exception as err:
                errors.append(f"{type(err).__name__}: {err}")
    wall = time.perf_counter() - started

    after = client.predict(*args, api_name="/transfer")
    return {
        "latencies": latencies,
        "errors": errors,
        "wall": wall,
        "warmup": warmup,
        "answers_after": bool(after and Path(after[0]).is_file()),
    }


def report(stats: dict, settings: dict[str, str]) -> str:
    """The markdown table (settings, results, machine)."""
    import gradio
    import torch

    lat = np.asarray(stats["latencies"]) if stats["latencies"] else np.asarray([np.nan])
    rows = [
        *settings.items(),
        ("successes", str(len(stats["latencies"]))),
        ("failures", str(len(stats["errors"]))),
        ("p50 latency", f"{np.percentile(lat, 50):.2f} s"),
        ("p95 latency", f"{np.percentile(lat, 95):.2f} s"),
        ("max latency", f"{lat.max():.2f} s"),
        ("single request (warm-up, alone)", f"{stats['warmup']:.2f} s"),
        ("throughput", f"{len(stats['latencies']) / stats['wall']:.2f} requests/s"),
        ("answers afterwards", "yes" if stats["answers_after"] else "NO"),
        ("machine", f"{cpu_name()}, {os.cpu_count()} CPUs"),
        (
            "versions",
            f"torch {torch.__version__}, "
            f"gradio {gradio.__version__}, Python {platform.python_version()}",
        ),
    ]
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if stats["errors"]:
        lines += ["", "First errors:", *(f"- {e}" for e in stats["errors"][:5])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="concurrent requests (32)")
    parser.add_argument("--url", default=None, help="a running app; default: start app.py")
    parser.add_argument("--model", default=None, help="checkpoint for the started app")
    parser.add_argument("--source", default="astronaut", help="sample face used as source")
    parser.add_argument("--exemplar", default="einstein", help="sample face used as exemplar")
    parser.add_argument("--attribute", default="Mustache")
    parser.add_argument("--size", type=int, default=1024, help="max long side of the uploads (px)")
    args = parser.parse_args(argv)

    app = _load_app()
    with tempfile.TemporaryDirectory() as tmp:
        source, exemplar = _write_inputs(Path(tmp), args.source, args.exemplar, args.size)
        if args.url:
            stats = run_load(args.url, source, exemplar, args.attribute, args.requests)
        else:
            server_args = ["--model", args.model] if args.model else []
            with app.serve_subprocess(server_args) as url:
                stats = run_load(url, source, exemplar, args.attribute, args.requests)
        from PIL import Image

        settings = {
            "requests (concurrent)": str(args.requests),
            "server": args.url or f"python app.py (model: {args.model or 'geometry prior'})",
            "queue": f"max_size {app.QUEUE_MAX_SIZE}, concurrency limit {app.CONCURRENCY_LIMIT}",
            "inputs": f"{args.source} {Image.open(source).size} <- {args.exemplar} "
            f"{Image.open(exemplar).size}, {args.attribute}, strength 1.0",
        }
    print(report(stats, settings))
    return 0 if not stats["errors"] and stats["answers_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
