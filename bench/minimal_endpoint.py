"""The least an Alertmanager receiver can do: parse the JSON, answer 200. A baseline.

The webhook's figures mean little alone: this endpoint runs the same framework and server
(FastAPI on uvicorn, same log settings) in a process of its own, driven by the same client with
the same payloads, so the difference between the two is what the webhook itself costs: checking
credentials, validating the notification, and recording it in the API server.

    PYTHONSAFEPATH=1 .venv/bin/python bench/minimal_endpoint.py --port 8080
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

app = FastAPI(title="Minimal Alertmanager receiver (benchmark baseline)")


@app.post("/api/v1/alerts")
async def receive(request: Request) -> Response:
    document = json.loads(await request.body())
    return JSONResponse({"status": "parsed", "alerts": len(document.get("alerts") or [])})


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
