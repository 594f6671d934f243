"""The dashboard's web side (aiohttp): the page at ``/``, its assets, and ``/api/state``.

The page polls ``/api/state`` (a JSON picture of :class:`~driftline.live.dashboard.state.DashboardState`)
once a second. Polling rather than server-sent events: each answer is the whole bounded picture,
so a reconnect or a missed message needs no replay logic, and a headless browser's
``--virtual-time-budget`` (the integration test) is not held open by a stream that never ends.
Every asset (uPlot included) is served from the package: nothing comes from the internet.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from driftline.live.dashboard.follow import Follower
from driftline.live.dashboard.state import DashboardState

# Not a valid module name on purpose: setuptools would take a folder named like one for a package.
STATIC_DIR = Path(__file__).with_name("page-assets")
STATE_KEY: web.AppKey[Any] = web.AppKey("dashboard", object)
CACHE_KEY: web.AppKey[Any] = web.AppKey("dashboard-cache", object)
#: One picture serves every browser polling within this many seconds: the view of many full
#: partitions takes tens of ms (8 partitions of 600 points: ~20 ms), under the follower's lock.
CACHE_S = 0.5


def make_app(
    state: DashboardState, lock: threading.Lock, about: dict[str, Any], follower: Any = None
) -> web.Application:
    """The web application over ``state`` (read under ``lock``); ``about`` is shown as is (the
    group, the topics), ``follower`` (optional) adds its status and record count."""
    app = web.Application()
    app[STATE_KEY] = (state, lock, about, follower)
    app[CACHE_KEY] = [0.0, None]
    app.router.add_get("/", _index)
    app.router.add_get("/api/state", _state)
    app.router.add_static("/static/", STATIC_DIR)
    return app


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


async def _state(request: web.Request) -> web.Response:
    state, lock, about, follower = request.app[STATE_KEY]
    cache = request.app[CACHE_KEY]  # [made at (monotonic s), body]: the app is frozen once run
    made, body = cache
    now = time.monotonic()
    if body is None or now - made >= CACHE_S:
        with lock:  # held by the follower only while it applies one poll's records
            view = state.view()
        view["about"] = about
        if follower is not None:
            view["follower"] = {"status": follower.status, "records": follower.records}
        body = orjson.dumps(view, option=orjson.OPT_NON_STR_KEYS)
        cache[:] = [now, body]
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def serve(settings: Any, *, host: str, port: int, bucket_s: float, history: int) -> int:
    """Follow the group's output topics and serve the page until Ctrl-C or SIGTERM."""
    state, lock = DashboardState(bucket_s=bucket_s), threading.Lock()
    follower = Follower(settings, state, lock, history=history)
    topics = settings.kafka.topics
    about = {
        "group": settings.service.app_id,
        "bootstrap": settings.kafka.bootstrap,
        "topics": {
            "events": topics.events,
            "predictions": topics.predictions,
            "alerts": topics.alerts,
            "snapshots": topics.snapshots,
            "dead_letter": topics.dead_letter,
        },
    }
    follower.connect()
    app = make_app(state, lock, about, follower)
    thread = threading.Thread(target=follower.run, name="dashboard-follower", daemon=True)

    async def start_following(_: web.Application) -> None:
        thread.start()

    async def stop_following(_: web.Application) -> None:
        follower.stop()
        thread.join(timeout=10)

    app.on_startup.append(start_following)
    app.on_cleanup.append(stop_following)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=None,
        print=lambda _: print(
            f"driftline dashboard: http://{shown}:{port}/  (group {about['group']}, "
            f"broker {settings.kafka.bootstrap}; Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        ),
    )
    return 0
