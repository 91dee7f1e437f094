"""Run one measurement in a fresh Python process, so its peak memory is its own and a failure stays there.

The child imports a function by dotted path, calls it with JSON keyword arguments and prints its JSON
result. A memory limit (RLIMIT_DATA: heap and anonymous maps, where tensors live; unlike an address-space
limit it ignores the gigabytes of library mappings a CUDA build of torch reserves) and a timeout turn
out-of-memory and runaway cases into results (``{"status": "oom"}`` / ``{"status": "timeout"}``) instead
of a stalled or killed parent.
"""

from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["run_isolated"]

_CHILD = """
import importlib, json, resource, sys
spec = json.loads(sys.argv[1])
if spec["memory_limit"]:
    resource.setrlimit(resource.RLIMIT_DATA, (spec["memory_limit"], spec["memory_limit"]))
module, _, name = spec["target"].rpartition(".")
try:
    result = getattr(importlib.import_module(module), name)(**spec["kwargs"])
except (MemoryError, RuntimeError) as err:
    if not isinstance(err, MemoryError) and "memory" not in str(err).lower():
        raise
    result = {"status": "oom", "error": str(err).splitlines()[0][:200]}
print("RESULT " + json.dumps(result))
"""


def run_isolated(
    target: str, kwargs: dict, *, timeout_s: float | None = None, memory_limit_bytes: int | None = None
) -> dict:
    """Call ``target(**kwargs)`` (``'package.module.function'``) in a child process and return its dict."""
    spec = json.dumps({"target": target, "kwargs": kwargs, "memory_limit": memory_limit_bytes})
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, spec], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        if proc.returncode < 0 or "MemoryError" in proc.stderr or "memory" in proc.stderr.lower():
            return {"status": "oom", "error": proc.stderr.strip().splitlines()[-1:] or [f"signal {-proc.returncode}"]}
        raise RuntimeError(f"isolated run of {target} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])
