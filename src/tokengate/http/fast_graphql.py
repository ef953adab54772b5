"""``POST /graphql`` off the generic stack: the GraphQL door answered before the application's router, middleware
chain and response signals, as ``/auth/check`` is (fast_forward_auth.py); integrations post the same few queries
over and over, and that stack costs a good share of an answer kept in memory (graphql/engine/kept_answers.py).

Everything the generic stack does for such a request is done here directly, the same way:

- the route's handler: ``GraphQLDoor.answer`` itself, with the application's runtime and this request's id;
- what ``middleware.observe`` does for every request: a request id (``X-Request-Id``), one access line and
  ``tokengate_http_requests_total{route="/graphql"}`` per request, a masked 500 or a 503 for what raises;
- what ``middleware.errors_as_json`` does with an aiohttp refusal raised on the way (``as_json_error``);
- what the ``on_response_prepare`` hook adds (``headers.add_security_headers``, called on the answer itself).

Only a POST whose target is exactly ``/graphql`` and that carries no ``Expect`` header is taken, and only in an
application whose one ``on_response_prepare`` hook is ``add_security_headers`` (with CORS configured, its hook
answers too: the generic stack serves then). ``tests/api/test_fast_graphql.py`` proves both doors answer alike.
"""

from __future__ import annotations

import time
from typing import Final

from aiohttp import hdrs, web

from tokengate.auth.gate import PRINCIPAL_PREFIX
from tokengate.http.graphql import GRAPHQL_DOOR, GraphQLDoor
from tokengate.http.headers import add_security_headers
from tokengate.http.middleware import ACCESS_LOG, METRICS, REQUEST_IDS, as_json_error, failure_response, observed
from tokengate.runtime import Runtime

ROUTE: Final = "/graphql"


def takes(request: web.BaseRequest) -> bool:
    """Whether this door answers the request (else the application does)."""
    return request.raw_path == ROUTE and request.method == hdrs.METH_POST and hdrs.EXPECT not in request.headers


class FastGraphQL:
    def __init__(self, app: web.Application, door: GraphQLDoor):
        self.door = door
        self.metrics = app[METRICS]
        self.access_log = app[ACCESS_LOG]
        self.request_ids = app[REQUEST_IDS]

    @classmethod
    def of(cls, app: web.Application) -> FastGraphQL | None:
        """The fast door for ``app`` (started, so its hooks are final), None when it must not take /graphql."""
        if GRAPHQL_DOOR not in app or list(app.on_response_prepare) != [add_security_headers]:
            return None
        return cls(app, app[GRAPHQL_DOOR])

    async def __call__(self, request: web.BaseRequest, runtime: Runtime) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = self.request_ids.next()
        status = 500
        try:
            response = await self.door.answer(request, runtime, request_id)
        except web.HTTPException as http_error:
            answer = as_json_error(http_error)
            if answer is None:  # raised on, as the generic stack does; aiohttp answers it
                status = http_error.status
                http_error.headers["X-Request-Id"] = request_id
                await add_security_headers(request, http_error)
                self._observed(request, request_id, status, started)
                raise
            response = answer
        except Exception as problem:
            response = failure_response(problem, request_id)
        status = response.status
        self._observed(request, request_id, status, started)
        response.headers["X-Request-Id"] = request_id
        await add_security_headers(request, response)
        return response

    def _observed(self, request: web.BaseRequest, request_id: str, status: int, started: float) -> None:
        principal = request.get(PRINCIPAL_PREFIX)
        observed(self.metrics, self.access_log, request_id, request.method, ROUTE, status, started, principal)
