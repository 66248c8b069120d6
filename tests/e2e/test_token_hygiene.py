"""The invite token stays out of URLs, Referer headers and the server's log."""

from __future__ import annotations

import pytest
from playwright.async_api import Request

from tests.e2e.conftest import OpenPage
from tests.e2e.helpers import invite_link, join, wait_frames
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser


async def test_token_kept_out_of_urls_and_logs(
    server: ServerProcess, open_page: OpenPage
) -> None:
    room = await server.create_room()
    token = room["guest"].token
    requests: list[Request] = []
    sockets: list[str] = []
    blue = await open_page("blue", invite_link(server, room, "Blue"))
    red = await open_page("red", "about:blank")
    red.on("request", lambda request: requests.append(request))
    red.on("websocket", lambda ws: sockets.append(ws.url))
    response = await red.goto(invite_link(server, room, "Red"))
    red_id = await join(red)
    await join(blue)
    await wait_frames(blue, {red_id})
    await red.reload()
    await join(red)

    assert response is not None
    assert response.headers.get("referrer-policy") == "no-referrer"
    assert token not in red.url
    assert "#" not in red.url
    assert sockets and all(token not in url for url in sockets)
    for request in requests:
        assert token not in request.url
        headers = await request.all_headers()
        assert token not in headers.get("referer", "")
    assert token not in server.log_text()
