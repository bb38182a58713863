"""Drive wrk (https://github.com/wg/wrk) with a Lua script and read its figures as JSON.

wrk cannot POST a body or send headers from its command line, so each run writes a small
Lua script: the request (method, body, headers; optionally a fresh ``Idempotency-Key`` per
request) and a ``done`` hook that prints one ``WRKJSON {...}`` line with the request count,
the non-2xx count and the latency percentiles in microseconds.
"""

from __future__ import annotations

import json
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

# A per-connection counter makes every request's key unique across wrk's threads and
# connections (math.random alone would repeat within a long run).
UNIQUE_KEY = r"""
local counter = 0
local prefix = tostring(math.random(1, 1e9))
init = function(args) prefix = prefix .. "-" .. tostring(math.random(1, 1e9)) end
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. "-" .. counter
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

    @property
    def ok_per_s(self) -> float:
        """Successful (2xx) requests per second."""
        return (self.requests - self.non2xx) / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok_per_s": self.ok_per_s}


def lua_script(body: str, headers: dict[str, str], *, unique_key: bool = False) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + (UNIQUE_KEY if unique_key else "") + DONE_HOOK


def run(url: str, body: str, headers: dict[str, str], *, connections: int, threads: int,
        seconds: float, unique_key: bool = False, timeout_s: float = 5.0) -> WrkResult:
    """One wrk run of `seconds` against `url` (loopback); its figures."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_script(body, headers, unique_key=unique_key))
        script = Path(f.name)
    try:
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
               f"--timeout={timeout_s:g}s", "-s", str(script), url]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             timeout=seconds + 60).stdout
    finally:
        script.unlink()
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    d = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(requests=d["requests"], seconds=d["duration_us"] / 1e6,
                     non2xx=d["non2xx"], socket_errors=d["socket_errors"],
                     p50_ms=d["p50_us"] / 1e3, p90_ms=d["p90_us"] / 1e3,
                     p99_ms=d["p99_us"] / 1e3, max_ms=d["max_us"] / 1e3)
