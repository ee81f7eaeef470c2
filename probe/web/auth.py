"""Authentication: a bearer token and/or HTTP basic auth in front of everything but /healthz,
the badges and the push URLs (whose token is the credential), each secret compared in
constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web
from aiohttp.typedefs import Middleware

from probe.web.push_route import PUSH_PREFIX
from probe.web.responses import Handler, json_error

__all__ = ["auth_middleware"]


def auth_middleware(token: str | None, basic: tuple[str, str] | None) -> Middleware:
    # An empty secret would let in anyone who sends an empty one ("Authorization: Bearer "):
    # the config refuses it, and so does the server, whoever builds it.
    if token is not None and not token.strip():
        raise ValueError("an empty bearer token protects nothing")
    if basic is not None and not (basic[0] and basic[1].strip()):
        raise ValueError("basic auth needs a user name and a non-empty password")
    bearer = None if token is None else token.encode()
    user, password = (None, None) if basic is None else (basic[0].encode(), basic[1].encode())
    # Basic makes a browser ask for the password; an API client sends the bearer token.
    challenge = 'Basic realm="probe", charset="UTF-8"' if basic else 'Bearer realm="probe"'

    def allowed(header: str) -> bool:
        scheme, _, credentials = header.strip().partition(" ")
        given = credentials.strip().encode()
        if not given:
            return False
        if scheme.lower() == "bearer" and bearer is not None:
            return hmac.compare_digest(given, bearer)
        if scheme.lower() == "basic" and user is not None and password is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return False
            name, sep, secret = decoded.partition(b":")
            # Both compared, always: the time taken says nothing about which was wrong.
            same_user = hmac.compare_digest(name, user)
            same_password = hmac.compare_digest(secret, password)
            return bool(sep) and same_user and same_password
        return False

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if bearer is None and user is None:
            return await handler(request)
        # A push URL's token is its own credential: a cron job sends that and nothing else.
        if path == "/healthz" or path.startswith(("/badge/", PUSH_PREFIX)):
            return await handler(request)
        if not allowed(request.headers.get("Authorization", "")):
            response = json_error(401, "authentication required")
            response.headers["WWW-Authenticate"] = challenge
            return response
        return await handler(request)

    return auth
