"""Benchmark: does ``sampling.compile`` pay off end to end, with and without the compile cache?

Every variant runs in a fresh Python process (``--timeout`` each; a failure or a timeout is
recorded, the others still run) and generates one orbit of ``--views`` views through
``novelviews.generation.generate``, the function ``nvs views`` samples with, on a model of
``--preset`` (``PRESET-random``: that architecture with random weights; speed does not depend on
the weights). Measured per variant: ``process_s`` (from just before the process is started to
the views being done: interpreter start, imports, model build, compilation, sampling),
``generate_s`` (the first ``generate`` call alone, compilation included) and ``steady_s`` (the
same call again in that process: the sampling cost once everything is compiled).

Variants (``--variants``, in this order):

* ``eager``: the eager settings (``--eager``, default ``sampling.cuda_graph=true``: the fastest
  eager setting on a GPU; ignored on the CPU);
* ``cold``: the fast settings (``--fast``, default compile + channels-last + CUDA graph) with an
  empty novelviews cache folder and empty inductor and Triton cache folders: a first run on a new
  machine;
* ``warm``: the fast settings with the novelviews cache folder ``cold`` filled and again empty
  inductor and Triton folders: a later process where only our compile cache is kept (a reboot, a
  cleaned ``/tmp``, a fresh container);
* ``local``: the fast settings with ``sampling.compile_cache=false`` but the inductor and Triton
  folders ``cold`` filled: what torch's own on-disk caches alone give on one machine.

Break-even (``break_even_views``) per compiled variant: the number of views ``n`` at which
``fixed + n * per_view`` equals eager's, with ``per_view = steady_s / views`` and ``fixed =
process_s - steady_s`` of each variant (a longer orbit pays the same compilation: the batch shape
repeats). ``null`` where the compiled step is not faster than eager (it never pays off);
``0`` where the variant is not slower even at one view.

The JSON (``--out``, default ``$OUT/compile_cache.json`` if ``$OUT`` is set) is rewritten after
each variant. ``--preset tiny --views 4 --steps 2 --device cpu`` proves the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("eager", "cold", "warm", "local")
DEFAULT_EAGER = "sampling.cuda_graph=true"
DEFAULT_FAST = "sampling.compile=default,sampling.channels_last=true,sampling.cuda_graph=true"


# --------------------------------------------------------------------------- one variant, in its own process


def child(args) -> dict[str, Any]:
    """Generate the orbit (twice) in this process; the timings as a dict."""
    import torch

    from novelviews.config import replace
    from novelviews.generation import generate
    from novelviews.runtime import precision_dtype
    from novelviews.views import ViewsConfig, load_any_model, path_cameras, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    overrides = [f"path.num_views={args.views}", f"sampling.steps={args.steps}", f"sampling.batch_size={args.batch_size}",
                 f"sampling.precision={args.precision}"] + split_settings(args.settings)
    cfg = replace(ViewsConfig(), overrides)
    cfg.sampling.validate()
    model = load_any_model(f"{args.preset}-random", device, precision_dtype(cfg.sampling.precision, device))
    s = model.config.image_size
    ramp = torch.linspace(-1, 1, s)
    image = torch.stack([ramp[None].expand(s, s), ramp[:, None].expand(s, s), ramp[None].expand(s, s).flip(1)])[None]
    c2w_in, targets, fovs, _ = path_cameras(cfg)

    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        views = generate(model, image, c2w_in, targets, fovs, scale=cfg.camera.scale, cfg=cfg.sampling,
                         progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        assert bool(torch.isfinite(views).all()), "non-finite views"
        return time.perf_counter() - t

    generate_s = run()
    done_at = time.time()
    steady_s = run() if args.steady else None
    from torch._dynamo.utils import counters

    return {"process_s": done_at - args.launched, "generate_s": generate_s, "steady_s": steady_s,
            "device": str(device), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "sampling": {k: getattr(cfg.sampling, k) for k in ("steps", "batch_size", "precision", "compile",
                                                               "compile_cache", "channels_last", "cuda_graph")},
            "inductor_counters": {k: int(v) for k, v in counters["inductor"].items() if "cache" in k},
            "aot_autograd_counters": {k: int(v) for k, v in counters["aot_autograd"].items() if "cache" in k}}


def split_settings(text: str) -> list[str]:
    """``"a.b=1,c.d=x"`` -> ``["a.b=1", "c.d=x"]`` (a comma inside brackets stays)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return [o for o in out if o]


# --------------------------------------------------------------------------- the parent


def run_variant(name: str, settings: str, env_dirs: dict[str, str], args, timeout: float) -> dict[str, Any]:
    """One variant in a fresh process with its cache folders; a failure or timeout is recorded."""
    rec: dict[str, Any] = {"variant": name, "settings": settings, "cache_dirs": dict(env_dirs)}
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child-result", str(result), "--settings", settings,
               "--preset", args.preset, "--views", str(args.views), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--precision", args.precision, "--device", args.device,
               "--threads", str(args.threads)] + ([] if args.steady else ["--no-steady"])
        env = dict(os.environ, **env_dirs)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        launched = time.time()
        try:
            proc = subprocess.run(cmd + ["--launched", repr(launched)], env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            rec.update(status="timeout", error=f"no result within {timeout:.0f} s",
                       stderr_tail=(exc.stderr or b"")[-2000:].decode(errors="replace")
                       if isinstance(exc.stderr, bytes) else (exc.stderr or "")[-2000:])
            return rec
        rec["wall_s"] = time.time() - launched
        if proc.returncode != 0 or not result.is_file():
            rec.update(status="error", returncode=proc.returncode, stderr_tail=proc.stderr[-2000:])
            return rec
        rec.update(json.loads(result.read_text()), status="ok")
        warnings = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "compile cache" in line]
        if warnings:
            rec["cache_warnings"] = warnings[-5:]
    return rec


def break_even(eager: dict, compiled: dict, views: int) -> float | None:
    """Views at which the compiled variant's end-to-end time equals eager's (see the docstring):
    None when its per-view time is not lower, 0 when it is not slower even at one view."""
    if eager.get("status") != "ok" or compiled.get("status") != "ok" or None in (eager.get("steady_s"),
                                                                               compiled.get("steady_s")):
        return None
    e_view, c_view = eager["steady_s"] / views, compiled["steady_s"] / views
    e_fixed, c_fixed = eager["process_s"] - eager["steady_s"], compiled["process_s"] - compiled["steady_s"]
    if c_view >= e_view:
        return None
    n = (c_fixed - e_fixed) / (e_view - c_view)
    return max(0.0, n)


def summary_rows(report: dict) -> str:
    """One markdown row per variant: process s, generate s, steady s, break-even views."""
    rows = []
    for r in report["results"]:
        if r.get("status") != "ok":
            rows.append(f"| {r['variant']} | {r.get('status')} | | | |")
            continue
        be = r.get("break_even_views")
        be_txt = "-" if r["variant"] == "eager" else ("never" if be is None else f"{math.ceil(be)}")
        steady = "-" if r.get("steady_s") is None else f"{r['steady_s']:.2f}"
        rows.append(f"| {r['variant']} | {r['process_s']:.1f} | {r['generate_s']:.2f} | {steady} | {be_txt} |")
    return "\n".join(rows)


def default_out() -> Path | None:
    out = os.environ.get("OUT")
    return Path(out) / "compile_cache.json" if out else None


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="zeronvs", choices=["zeronvs", "demo", "tiny"],
                   help="model architecture, random weights (default zeronvs: full size)")
    p.add_argument("--views", type=int, default=16, help="views on the orbit (default 16)")
    p.add_argument("--steps", type=int, default=10, help="denoising steps (default 10, as nvs views)")
    p.add_argument("--batch-size", type=int, default=8, help="sampling.batch_size (default 8, as nvs views)")
    p.add_argument("--precision", default="auto", help="sampling.precision (default auto: bf16 on a GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list of eager, cold, warm, local")
    p.add_argument("--eager", default=DEFAULT_EAGER, help="settings of the eager variant (default %(default)s)")
    p.add_argument("--fast", default=DEFAULT_FAST, help="settings of the compiled variants (default %(default)s)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per variant process (default 900)")
    p.add_argument("--threads", type=int, default=0, help="torch threads in each process (0: torch's default)")
    p.add_argument("--no-steady", dest="steady", action="store_false",
                   help="skip the second generate call (no steady_s, no break-even)")
    p.add_argument("--cache-root", type=Path, default=None,
                   help="parent of the variants' cache folders (default: a temporary folder, removed after)")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default $OUT/compile_cache.json if $OUT is set)")
    # the child process's own arguments
    p.add_argument("--child-result", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--settings", default="", help=argparse.SUPPRESS)
    p.add_argument("--launched", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("views", "steps", "batch_size"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    bad = [v for v in split_settings(args.variants) if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: unknown {', '.join(bad)} (use {', '.join(VARIANTS)})")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.child_result is not None:
        rec = child(args)
        args.child_result.write_text(json.dumps(rec))
        return rec
    out = args.out or default_out()
    variants = split_settings(args.variants)
    report: dict[str, Any] = {
        "benchmark": "compile_cache",
        "command": " ".join(["python", "benchmarks/compile_cache.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("child_result", "settings", "launched")},
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.cache_root or tmp)

        def folders(ours_dir: str, torch_dirs: str) -> dict[str, str]:  # ours, inductor's, Triton's
            return {"NOVELVIEWS_CACHE_DIR": str(root / ours_dir),
                    "TORCHINDUCTOR_CACHE_DIR": str(root / f"inductor_{torch_dirs}"),
                    "TRITON_CACHE_DIR": str(root / f"triton_{torch_dirs}")}

        ours = str(root / "novelviews")
        dirs = {"eager": folders("novelviews_eager", "eager"), "cold": folders("novelviews", "cold"),
                "warm": folders("novelviews", "warm"), "local": folders("novelviews_off", "cold")}
        for name in variants:
            settings = args.eager if name == "eager" else args.fast + (",sampling.compile_cache=false" if name == "local" else "")
            rec = run_variant(name, settings, dirs[name], args, args.timeout)
            if name in ("cold", "warm"):
                files = sorted(Path(ours, "compile").glob("*.bin"))
                rec["cache_files"] = [{"file": f.name, "bytes": f.stat().st_size} for f in files]
            report["results"].append(rec)
            by_name = {r["variant"]: r for r in report["results"]}
            for r in report["results"]:
                if r["variant"] != "eager" and "eager" in by_name:
                    r["break_even_views"] = break_even(by_name["eager"], r, args.views)
            report["markdown_rows"] = summary_rows(report)
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp_out = out.with_suffix(out.suffix + ".tmp")
                tmp_out.write_text(json.dumps(report, indent=2) + "\n")
                os.replace(tmp_out, out)
            status = rec.get("status")
            line = (f"{name:<6} process {rec['process_s']:7.1f} s  generate {rec['generate_s']:7.2f} s"
                    + (f"  steady {rec['steady_s']:7.2f} s" if rec.get("steady_s") is not None else "")
                    if status == "ok" else f"{name:<6} {status}: {rec.get('error') or rec.get('stderr_tail', '')[-300:]}")
            print(line, flush=True)
    print("| variant | process s | generate s | steady s | break-even views |\n| --- | --- | --- | --- | --- |")
    print(report["markdown_rows"])
    return report


if __name__ == "__main__":
    main()
