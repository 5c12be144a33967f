"""The public listener's body reads, refused in the gateway's own words.

The guard, its site and request handler, and bounded body reads are the shared ones
(``common.connections``: a connection cap, a header timeout that also closes idle keep-alive
connections, hang-up callbacks); the gateway counts them into its metrics
(``ConnectionGuard(..., metrics=gateway.metrics)``), and ``read_body`` here answers what the
shared one refuses with the gateway's own refusals (``gateway.refusals``): 413 ``too_large``,
408 ``body_timeout``, 400 ``malformed`` (also for a body sent with a ``Content-Encoding``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.connections import BodyEncoded, BodyMalformed, BodyTimedOut, BodyTooLarge
from common.connections import read_body as read_whole_body
from gateway.refusals import Refusal, malformed

if TYPE_CHECKING:
    from aiohttp import web


async def read_body(request: web.Request, *, limit: int, within: float) -> bytes:
    """The whole body, however it arrives; ``Refusal`` 413 past ``limit``, 408 after ``within``.

    A body with a ``Content-Encoding`` is refused unread (400 ``malformed``): the body is the
    exact bytes a client signed, and sealed bytes do not compress, so inflating one would only
    let an unauthenticated sender have a kilobyte expanded into the largest body and hashed.
    """
    try:
        return await read_whole_body(request, limit=limit, within=within)
    except BodyEncoded as exc:
        raise malformed("the body is sent as is, without a Content-Encoding") from exc
    except BodyTooLarge as exc:
        raise Refusal(413, "too_large", "request body is too large") from exc
    except BodyTimedOut as exc:
        raise Refusal(408, "body_timeout", "the request body did not arrive in time") from exc
    except BodyMalformed as exc:
        raise malformed("the request body is not valid HTTP") from exc
