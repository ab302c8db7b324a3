"""The load generator: vegeta, a Go tool, so generating load does not eat the gate's CPU in Python.

Open loop: requests leave at the fixed rate whether or not earlier ones were answered, so a
slow server shows up as latency (and errors), not as a politely lower rate. Bodies are
streamed to ``vegeta attack -lazy`` as JSON targets while it runs, so a million distinct
requests never sit in a file.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.12.0"
BIN_DIR = pathlib.Path(os.environ.get("SAFETY_GATE_E2E_BIN", pathlib.Path.home() / ".cache/safety-gate/bin"))


def ensure_vegeta(*, bin_dir: pathlib.Path = BIN_DIR) -> pathlib.Path:
    """The cached vegeta binary, built from the Go module proxy on first use.

    Built inside a throwaway module that pins the version, because ``go install pkg@version``
    also asks the proxy for the module's version list, which the proxy may refuse.
    """
    binary = bin_dir / "vegeta"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("vegeta is not in ~/.cache/safety-gate/bin and there is no Go toolchain to build it")
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sg-vegeta-") as tmp:
        module = pathlib.Path(tmp)
        (module / "go.mod").write_text(f"module vegetabuild\n\ngo 1.22\n\nrequire {VEGETA_MODULE} {VEGETA_VERSION}\n")
        (module / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{VEGETA_MODULE}"\n')
        subprocess.run([go, "build", "-o", str(binary), VEGETA_MODULE], cwd=module, check=True,
                       env={**os.environ, "GOFLAGS": "-mod=mod"}, timeout=600)
    return binary


@dataclasses.dataclass(frozen=True)
class AttackReport:
    """One attack, summarised: latencies in milliseconds, errors as non-2xx or transport failures."""

    requests: int
    rate: float          # requests sent per second
    throughput: float    # successful responses per second
    p50: float
    p95: float
    p99: float
    max: float
    errors: int
    status_codes: dict[str, int]
    error_messages: list[str]

    @classmethod
    def from_vegeta(cls, report: dict[str, Any]) -> AttackReport:
        """Read ``vegeta report -type=json``. A 200 that denies is a decision, not an error."""
        latencies = report["latencies"]
        codes = {str(code): int(n) for code, n in (report.get("status_codes") or {}).items()}
        ok = sum(n for code, n in codes.items() if code.startswith("2"))
        return cls(requests=int(report["requests"]), rate=float(report["rate"]),
                   throughput=float(report["throughput"]), p50=latencies["50th"] / 1e6,
                   p95=latencies["95th"] / 1e6, p99=latencies["99th"] / 1e6, max=latencies["max"] / 1e6,
                   errors=int(report["requests"]) - ok, status_codes=codes,
                   error_messages=list(report.get("errors") or [])[:5])


def posts(*, url: str, bodies: Iterator[bytes]) -> Iterator[bytes]:
    """vegeta JSON targets: a POST of each body as an AdmissionReview."""
    for body in bodies:
        target = {"method": "POST", "url": url, "header": {"Content-Type": ["application/json"]},
                  "body": base64.b64encode(body).decode()}
        yield json.dumps(target, separators=(",", ":")).encode() + b"\n"


def gets(*, urls: Iterator[str], headers: dict[str, str]) -> Iterator[bytes]:
    """vegeta JSON targets: a GET of each URL with these headers."""
    header = {name: [value] for name, value in headers.items()}
    for url in urls:
        yield json.dumps({"method": "GET", "url": url, "header": header}, separators=(",", ":")).encode() + b"\n"


def attack(*, targets: Iterator[bytes], rate: int, seconds: float, root_certs: Sequence[pathlib.Path],
           results: pathlib.Path, timeout: float = 10.0) -> AttackReport:
    """Send ``rate`` of ``targets`` a second for ``seconds`` over keep-alive HTTPS/1.1; return the report."""
    vegeta = ensure_vegeta()
    command = [str(vegeta), "attack", "-lazy", "-format=json", f"-rate={rate}/1s", f"-duration={seconds}s",
               f"-timeout={timeout}s", "-http2=false", "-keepalive=true", "-workers=20",
               f"-root-certs={','.join(str(p) for p in root_certs)}", f"-output={results}"]
    errors = results.with_suffix(".stderr")
    with open(errors, "wb") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=stderr)
        assert process.stdin is not None
        feeder = threading.Thread(target=_feed, args=(process.stdin, targets), daemon=True)
        feeder.start()
        process.wait()
    feeder.join(timeout=5)  # vegeta closed its end: the feeder stops on BrokenPipe
    if process.returncode != 0:
        raise RuntimeError(f"vegeta attack failed ({process.returncode}): {errors.read_text()[-2000:]}")
    return report(results)


def _feed(stdin: Any, targets: Iterator[bytes]) -> None:
    try:
        for line in targets:
            stdin.write(line)
    except (BrokenPipeError, ValueError, OSError):
        pass  # vegeta finished and closed its end


def report(results: pathlib.Path) -> AttackReport:
    output = subprocess.run([str(ensure_vegeta()), "report", "-type=json", str(results)], check=True,
                            capture_output=True, timeout=600).stdout
    return AttackReport.from_vegeta(json.loads(output))


def response_bodies(results: pathlib.Path) -> Iterator[bytes]:
    """Every response body of an attack, for counting allowed and denied answers."""
    encoded = subprocess.Popen([str(ensure_vegeta()), "encode", "-to=json", str(results)], stdout=subprocess.PIPE)
    assert encoded.stdout is not None
    for line in encoded.stdout:
        body = json.loads(line).get("body")
        yield base64.b64decode(body) if body else b""
    encoded.wait()
