"""Load test of the Gradio demo: N concurrent ``/transfer`` requests through ``gradio_client``.

For each concurrency limit (default: 1, then 2) starts ``python app.py --concurrency C`` on a
free port (or uses ``--url``), sends one warm-up request, then N requests at once, then one
more request to check the app still answers. Prints successes, failures and latency
percentiles as a markdown table, one column per run, with the settings and machine.

    python benchmarks/app_load.py [--requests 32] [--concurrency 1 2] [--url URL] [--model ID]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import cpu_name, load_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


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

    load = os.getloadavg()[0]
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
        "load": load,
        "answers_after": bool(after and Path(after[0]).is_file()),
    }


def results(stats: dict) -> dict[str, str]:
    """One run's column of the table."""
    lat = np.asarray(stats["latencies"]) if stats["latencies"] else np.asarray([np.nan])
    return {
        "successes": str(len(stats["latencies"])),
        "failures": str(len(stats["errors"])),
        "p50 latency": f"{np.percentile(lat, 50):.2f} s",
        "p95 latency": f"{np.percentile(lat, 95):.2f} s",
        "max latency": f"{lat.max():.2f} s",
        "single request (warm-up, alone)": f"{stats['warmup']:.2f} s",
        "throughput": f"{len(stats['latencies']) / stats['wall']:.2f} requests/s",
        "answers afterwards": "yes" if stats["answers_after"] else "NO",
        "machine load at start (1-min average)": f"{stats['load']:.1f}",
    }


def report(runs: dict[str, dict], settings: dict[str, str]) -> str:
    """The markdown table: settings, then one column of results per run, then the machine."""
    import gradio
    import torch

    columns = {name: results(stats) for name, stats in runs.items()}
    width = len(columns)
    rows = [(key, *(value,) * width) for key, value in settings.items()]
    rows += [
        (key, *(column[key] for column in columns.values()))
        for key in results(next(iter(runs.values())))
    ]
    rows += [
        ("machine", *(f"{cpu_name()}, {os.cpu_count()} CPUs",) * width),
        (
            "versions",
            *(
                f"torch {torch.__version__}, gradio {gradio.__version__}, "
                f"Python {platform.python_version()}",
            )
            * width,
        ),
    ]
    lines = [
        "| | " + " | ".join(columns) + " |",
        "|---|" + "---|" * width,
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    for name, stats in runs.items():
        if stats["errors"]:
            lines += ["", f"First errors ({name}):", *(f"- {e}" for e in stats["errors"][:5])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="concurrent requests (32)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 2],
        help="the app's concurrency limits to run with, one server each (1 2)",
    )
    parser.add_argument("--url", default=None, help="a running app; default: start app.py")
    parser.add_argument("--model", default=None, help="checkpoint for the started app")
    parser.add_argument("--source", default="astronaut", help="sample face used as source")
    parser.add_argument("--exemplar", default="einstein", help="sample face used as exemplar")
    parser.add_argument("--attribute", default="Mustache")
    parser.add_argument("--size", type=int, default=1024, help="max long side of the uploads (px)")
    args = parser.parse_args(argv)

    app = load_app()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, exemplar = _write_inputs(Path(tmp), args.source, args.exemplar, args.size)
        for limit in [None] if args.url else args.concurrency:
            if args.url:
                runs["given server"] = run_load(
                    args.url, source, exemplar, args.attribute, args.requests
                )
                continue
            server_args = ["--concurrency", str(limit)]
            server_args += ["--model", args.model] if args.model else []
            with app.serve_subprocess(server_args) as server:
                runs[f"concurrency limit {limit}"] = run_load(
                    server.url, source, exemplar, args.attribute, args.requests
                )
        from PIL import Image

        settings = {
            "requests (concurrent)": str(args.requests),
            "server": args.url or f"python app.py (model: {args.model or 'geometry prior'})",
            "queue": f"max_size {app.QUEUE_MAX_SIZE}",
            "inputs": f"{args.source} {Image.open(source).size} <- {args.exemplar} "
            f"{Image.open(exemplar).size}, {args.attribute}, strength 1.0",
        }
    print(report(runs, settings))
    ok = all(not stats["errors"] and stats["answers_after"] for stats in runs.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
