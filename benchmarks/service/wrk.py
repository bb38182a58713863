"""Drive wrk (https://github.com/wg/wrk) with a Lua script and read its figures as JSON.

wrk cannot POST a body or send headers from its command line, so each run writes a small
Lua script: the request (method, body, headers; optionally a fresh ``Idempotency-Key`` per
request) and a ``done`` hook that prints one ``WRKJSON {...}`` line with the request count,
the non-2xx count and the latency percentiles in microseconds.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DONE_HOOK = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""

# A counter per wrk thread behind a prefix of the start time and the thread's number makes
# every request's Idempotency-Key unique; Authorization rotates over the API keys (tenants).
VARYING = r"""
local counter = 0
local prefix = ""
local made = 0
setup = function(thread)
  made = made + 1
  thread:set("tid", made)
end
init = function(args)
  prefix = tostring(os.time()) .. "-" .. tostring(tid) .. "-" .. tostring(math.random(1, 1e9))
end
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. "-" .. counter
  wrk.headers["Authorization"] = "Bearer " .. api_keys[counter % #api_keys + 1]
  return wrk.format(nil)
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float  # wrk's own CPU time (user + system)

    @property
    def ok_per_s(self) -> float:
        """Successful (2xx) requests per second."""
        return (self.requests - self.non2xx) / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok_per_s": self.ok_per_s}


def lua_script(body: str, headers: dict[str, str], *,
               rotate_keys: list[str] | None = None, method: str = "POST") -> str:
    """The script: a fixed request, or (rotate_keys) a fresh Idempotency-Key and the next
    API key on every request."""
    lines = [f"wrk.method = {json.dumps(method)}", f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if rotate_keys:
        lines.append("api_keys = {" + ", ".join(json.dumps(k) for k in rotate_keys) + "}")
    return "\n".join(lines) + "\n" + (VARYING if rotate_keys else "") + DONE_HOOK


def run(url: str, body: str, headers: dict[str, str], *, connections: int, threads: int,
        seconds: float, rotate_keys: list[str] | None = None,
        timeout_s: float = 5.0, method: str = "POST") -> WrkResult:
    """One wrk run of `seconds` against `url` (loopback); its figures."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_script(body, headers, rotate_keys=rotate_keys, method=method))
        script = Path(f.name)
    try:
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
               f"--timeout={timeout_s:g}s", "-s", str(script), url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             timeout=seconds + 60).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        script.unlink()
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    d = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(requests=d["requests"], seconds=d["duration_us"] / 1e6,
                     non2xx=d["non2xx"], socket_errors=d["socket_errors"],
                     p50_ms=d["p50_us"] / 1e3, p90_ms=d["p90_us"] / 1e3,
                     p99_ms=d["p99_us"] / 1e3, max_ms=d["max_us"] / 1e3,
                     cpu_s=round(after.ru_utime + after.ru_stime - before.ru_utime
                                 - before.ru_stime, 3))


def run_metered(meter: Any, url: str, body: str, headers: dict[str, str],
                **kwargs: Any) -> dict[str, Any]:
    """run(), plus the CPU seconds per request of each process group `meter` watches
    (a harness.CpuMeter) and of wrk itself, and the load average at the end."""
    meter.start()
    res = run(url, body, headers, **kwargs)
    cpu = meter.stop()
    done = max(res.requests, 1)
    cpu_ms = {k: round(v * 1e3 / done, 3) for k, v in {**cpu, "wrk": res.cpu_s}.items()}
    return {**res.as_dict(), "cpu_ms_per_request": cpu_ms, "load": os.getloadavg()[0]}
