"""The live loop on this machine, end to end: what ``scripts/demo`` runs.

Starts the project's own Kafka broker (scripts/kafka-local), one ``driftline serve`` worker and
``driftline dashboard``; produces a built-in drifting stream with late labels;
prints the incidents as the worker raises them; then runs ``driftline backtest`` of the same stream
and says whether the live alerts equal the backtest's. Everything it started is stopped at the end
(``--keep`` leaves it running; ``scripts/demo --stop`` stops it later).

Run with the project's venv: ``.venv/bin/python scripts/live_demo.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: What the demo writes (broker data, logs, the backtest): .demo/, or --dir.
STATE = REPO / ".demo"
PIDS = STATE / "pids.json"
#: Bounded waits (seconds).
WORKER_START_S = 90
CATCH_UP_S = 120
ALERTS_SETTLE_S = 3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_or_free(port: int) -> int:
    """``port`` when nothing listens on it, else a free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def driftline(*args: str) -> list[str]:
    return [str(BIN / "driftline"), *args]


def spawn_logged(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[Any]:
    """``command`` in its own session (stop_all kills the group), output to ``<name>.log``."""
    with open(STATE / f"{name}.log", "wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kafka_env(port: int, controller: int) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DATA_DIR": str(STATE / "kafka"),
    }


def start_broker() -> tuple[str, dict[str, str]]:
    env = kafka_env(free_port(), free_port())
    log(
        "starting the local Kafka broker (scripts/kafka-local; the first run fetches it from Maven)"
    )
    done = subprocess.run(
        [str(REPO / "scripts" / "kafka-local"), "start"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit("scripts/demo: the Kafka broker did not start (see above)")
    return done.stdout.strip().splitlines()[-1], env


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError):
        return None


def labels_reordered(port: int) -> int:
    """``driftline_labels_reordered_total`` of the worker (labels applied on arrival)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return 0
    prefix = "driftline_labels_reordered_total{"
    return sum(
        int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith(prefix)
    )


def wait_for(what: str, condition: Any, timeout: float, proc: subprocess.Popen[Any]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"scripts/demo: the worker stopped while waiting for {what}")
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"scripts/demo: no {what} after {timeout:.0f} s")


def follow_incidents(env: dict[str, str], stop: threading.Event) -> subprocess.Popen[str]:
    """``driftline alerts --kind drift,recovered,promoted`` in the background, its lines shown."""
    proc = subprocess.Popen(
        driftline("alerts", "--from-beginning", "--kind", "drift,recovered,promoted"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    def show() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not stop.is_set():
                print(f"  live  {line.rstrip()}", flush=True)

    threading.Thread(target=show, daemon=True).start()
    return proc


def read_alerts(env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        driftline("alerts", "--from-beginning", "--json", "--timeout", "3"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=60,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def comparable(alert: dict[str, Any]) -> tuple[Any, ...]:
    return (alert.get("index"), alert.get("kind"), alert.get("signal"), alert.get("incident"))


def stop_all(pids: dict[str, Any]) -> None:
    for name in ("dashboard", "worker"):
        pid = pids.get(name)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)  # the worker takes its final snapshot first
            except ProcessLookupError:
                continue
            for _ in range(60):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
            else:
                os.kill(pid, signal.SIGKILL)
    if pids.get("kafka_env"):
        subprocess.run(
            [str(REPO / "scripts" / "kafka-local"), "stop"],
            env={**os.environ, **pids["kafka_env"]},
            stdout=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
    PIDS.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if PIDS.exists():
        log("stopping what an earlier `scripts/demo --keep` left running")
        stop_all(json.loads(PIDS.read_text()))
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    bootstrap, kenv = start_broker()
    web, metrics, dash = free_port(), free_port(), port_or_free(args.dashboard_port)
    env = {
        **os.environ,
        "DRIFTLINE_BOOTSTRAP": bootstrap,
        "DRIFTLINE_SERVICE__APP_ID": "driftline-demo",
        # One partition: one engine, so the live run and the backtest are comparable record for
        # record (with more, each partition's engine sees its share of the stream).
        "DRIFTLINE_KAFKA__PARTITIONS": "1",
        "DRIFTLINE_SERVICE__WEB_PORT": str(web),
        "DRIFTLINE_SERVICE__METRICS_PORT": str(metrics),
        "DRIFTLINE_SERVICE__DATA_DIR": str(STATE / "worker"),
        # A key for this demo only (a real deployment keeps its own: `driftline snapshots keygen`).
        "DRIFTLINE_SNAPSHOT_KEY": os.environ.get("DRIFTLINE_SNAPSHOT_KEY") or secrets.token_hex(32),
        "PYTHONUNBUFFERED": "1",
    }
    # Slices by education level (agrawal's elevel; the dashboard shows each value's metric), a
    # snapshot every 1,000 events (the dashboard reads slices from them). The backtest gets the
    # same settings: the comparison stays like for like.
    env.setdefault(
        "DRIFTLINE_SLICES__BY", '["elevel"]' if args.dataset.startswith("agrawal") else "[]"
    )
    env.setdefault("DRIFTLINE_SNAPSHOT__EVERY_EVENTS", "1000")
    # Events wait up to 1 s at the head for labels still on their way (default 50 ms): on a busy
    # machine a label can reach the broker more than 50 ms after a later event, and is then
    # applied on arrival, not where its time says (counted; the run then differs from the
    # backtest). A demo that compares the two gives it room.
    env.setdefault("DRIFTLINE_LABELS__MAX_IDLE_MS", "1000")
    pids: dict[str, Any] = {"kafka_env": {k: kenv[k] for k in kenv if k.startswith("KAFKA_")}}
    procs: list[subprocess.Popen[Any]] = []
    stop = threading.Event()
    try:
        worker = spawn_logged("worker", driftline("serve", "--loglevel", "warning"), env)
        procs.append(worker)  # stopped in the end whatever happens next
        pids["worker"] = worker.pid
        board = spawn_logged("dashboard", driftline("dashboard", "--port", str(dash)), env)
        procs.append(board)
        pids["dashboard"] = board.pid
        PIDS.write_text(json.dumps(pids))
        log(f"worker started (log: {STATE / 'worker.log'}; health: http://127.0.0.1:{web}/health)")
        wait_for(
            "partition assignment",
            lambda: (health(web) or {}).get("assigned"),
            WORKER_START_S,
            worker,
        )
        log(f"dashboard: http://127.0.0.1:{dash}/  (open it in a browser)")
        follower = follow_incidents(env, stop)
        procs.append(follower)
        log(
            f"producing {args.dataset} ({args.limit or 'all'} events) at {args.rate:g} events/s, "
            f"labels {args.label_delay} events late; incidents as they arrive:"
        )
        produce = [
            "produce",
            "--dataset",
            args.dataset,
            "--rate",
            str(args.rate),
            "--label-delay",
            str(args.label_delay),
        ]
        if args.limit:
            produce += ["--limit", str(args.limit)]
        done = subprocess.run(
            driftline(*produce), env=env, stdout=subprocess.DEVNULL, timeout=900, check=False
        )
        if done.returncode != 0:
            raise SystemExit("scripts/demo: driftline produce failed")
        total = args.limit or dataset_size(args.dataset)

        def learned_all() -> bool:
            parts = (health(web) or {}).get("partitions", {}).values()
            return sum(p["learned"] for p in parts) >= total

        wait_for(f"{total:,} events learned", learned_all, CATCH_UP_S, worker)
        time.sleep(ALERTS_SETTLE_S)
        stop.set()
        follower.terminate()
        live = read_alerts(env)
        log(f"the worker learned all {total:,} events; {len(live)} alert records on the topic")
        log("the backtest of the same stream, through the same engine:")
        backtest = [
            "backtest",
            "--dataset",
            args.dataset,
            "--label-delay",
            str(args.label_delay),
            "--out",
            str(STATE / "backtest"),
        ]
        if args.limit:
            backtest += ["--limit", str(args.limit)]
        subprocess.run(driftline(*backtest), env=env, timeout=900, check=False)
        replayed = [
            json.loads(line)
            for line in (STATE / "backtest" / "alerts.jsonl").read_text().splitlines()
            if line.strip()
        ]
        same = [comparable(a) for a in live] == [comparable(a) for a in replayed]
        verdict = "identical" if same else "DIFFERENT"
        reordered = labels_reordered(metrics)
        if reordered:
            verdict += (
                f"; {reordered} labels reached the broker later than labels.max_idle_ms after "
                "a later event and were applied on arrival (README: the one case that is not "
                "deterministic)"
            )
            # The worker's own account of them (one line per 10 s), for whoever reads this.
            for line in (STATE / "worker.log").read_text(errors="replace").splitlines():
                if "out of their time order" in line:
                    print(f"  worker: {line.strip()}", flush=True)
        print(
            f"\nlive: {len(live)} alert records, backtest: {len(replayed)}: {verdict} "
            f"(index, kind, signal, incident). Took {time.monotonic() - started:.0f} s.",
            flush=True,
        )
        if args.keep:
            print(
                "\nStill running (--keep): the broker at "
                f"{bootstrap}, the worker, the dashboard at http://127.0.0.1:{dash}/."
                f"\n  DRIFTLINE_BOOTSTRAP={bootstrap} .venv/bin/driftline alerts --from-beginning"
                "\n  scripts/demo --stop      stops them",
                flush=True,
            )
        return 0 if same else 1
    finally:
        stop.set()
        for proc in procs:
            if proc.poll() is None and not (args.keep and proc.pid in pids.values()):
                proc.terminate()
        if not args.keep:
            log("stopping the worker, the dashboard and the broker")
            stop_all(pids)


def dataset_size(name: str) -> int:
    from driftline.offline.datasets import get_dataset

    return get_dataset(name).size


def main() -> int:
    global STATE, PIDS
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="The live loop on this machine: the local Kafka broker, one worker (and the "
        "dashboard), a built-in drifting stream with late labels, the incidents as they come, "
        "then the backtest of the same stream beside it. Stops everything it started.",
    )
    parser.add_argument(
        "--dataset", default="agrawal-abrupt", help="built-in stream (agrawal-abrupt)"
    )
    parser.add_argument("--limit", type=int, help="the first N events (default: all)")
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second (2000)")
    parser.add_argument(
        "--label-delay", type=int, default=100, help="labels arrive N events late (100)"
    )
    parser.add_argument("--dashboard-port", type=int, default=8050, help="dashboard port (8050)")
    parser.add_argument(
        "--keep", action="store_true", help="leave the broker, worker and dashboard running"
    )
    parser.add_argument("--stop", action="store_true", help="stop what --keep left running")
    parser.add_argument(
        "--dir", type=Path, default=REPO / ".demo", help="where broker data and logs go (.demo/)"
    )
    args = parser.parse_args()
    STATE, PIDS = args.dir.resolve(), args.dir.resolve() / "pids.json"
    if args.stop:
        if PIDS.exists():
            stop_all(json.loads(PIDS.read_text()))
            log("stopped")
        else:
            log("nothing to stop")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
