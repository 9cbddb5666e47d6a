"""The live page's feed: decisions published on the `reid` topic, as server-sent events; forged bytes are skipped."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

log = logging.getLogger("zdg.ui")
FEED_MAX_MESSAGE_MB = 16  # a decision is a few KB: a larger message on the feed drops its connection


def decision_view(fields: dict) -> dict:
    """What the live feed shows of a `reid` decision."""
    keys = ("status", "cluster_id", "name", "distance", "sequence_id", "video", "first_frame", "last_frame", "merged_from")
    return {k: fields.get(k) for k in keys if k in fields}


async def events(request: Request) -> Response:
    """Server-sent events: each decision published on the `reid` topic, as JSON; malformed messages are counted
    and skipped, and one over FEED_MAX_MESSAGE_MB drops the connection before it is read."""
    import zmq
    import zmq.asyncio

    from zdg.message import DecodeError, decode

    wb = request.app.state.bench
    if not wb.feed:
        return PlainTextResponse("no feed: start `zdg ui --feed ENDPOINT`", status_code=404)

    async def stream():
        sock = zmq.asyncio.Context.instance().socket(zmq.SUB)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, FEED_MAX_MESSAGE_MB * 1024 * 1024)
        sock.setsockopt(zmq.SUBSCRIBE, b"reid")
        sock.connect(wb.feed)
        try:
            yield ": subscribed\n\n"
            while not await request.is_disconnected():
                if not await sock.poll(1000):
                    yield ": idle\n\n"
                    continue
                try:
                    _, msg = decode(await sock.recv_multipart())
                except DecodeError as exc:
                    wb.feed_malformed += 1
                    if wb.feed_malformed % 100 == 1:  # the first, then every 100th: a flood does not flood the log
                        log.warning("live feed: skipped a malformed message (%d so far): %s", wb.feed_malformed, exc)
                    continue
                if not msg.eos:
                    yield f"data: {json.dumps(decision_view(msg.fields), default=str)}\n\n"
        finally:
            sock.close()

    return StreamingResponse(stream(), media_type="text/event-stream")
