"""``POST /secret-scanning/github``: GitHub's secret-scanning partner reports of tokens seen in public.

Verify the signature over the raw body (401 and nothing revoked when it is missing or wrong), revoke each valid
token as ``reportLeakedToken`` does (audited ``service_token.leak_reported`` with the URL GitHub found it at),
and answer GitHub's feedback list. 404 while ``TOKENGATE_GITHUB_SCANNING_KEYS`` is not set. Each client address
may send ``TOKENGATE_RATE_SECRET_SCANNING`` reports a second (limits.py; past it 429 with ``Retry-After``, before
the body is read or any signature checked); a body is at most ``MAX_REPORT_BYTES`` and must arrive within the
body timeout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web

from tokengate.auth.gate import Refusal
from tokengate.core import leak_reports as secret_scanning
from tokengate.core.leak_reports import KeysProblem, PublicKeys
from tokengate.http.bodies import read_in_time
from tokengate.http.responses import error_response, json_response, refusal_response
from tokengate.runtime import RUNTIME
from tokengate.services import Actor, service_tokens

log = logging.getLogger("tokengate.core.leak_reports")

ROUTE = "/secret-scanning/github"
REPORTER = "github_secret_scanning"


class ScanningKeys:
    """GitHub's public keys from the configured file, read again when the file changes (GitHub rotates them:
    the operator replaces the file, no restart needed). A file that stops parsing keeps the keys it had."""

    def __init__(self, path: Path | None):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: PublicKeys = {}

    @property
    def configured(self) -> bool:
        return self.path is not None

    def current(self) -> PublicKeys:
        if self.path is None:
            return {}
        try:
            status = os.stat(self.path)
        except OSError as problem:
            log.warning("cannot read the GitHub scanning keys: %s", type(problem).__name__)
            return self._keys
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp != self._stamp:
            try:
                self._keys = secret_scanning.load_public_keys(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeError, KeysProblem) as problem:
                log.warning("GitHub scanning keys unusable, keeping the previous ones: %s", problem)
            self._stamp = stamp
        return self._keys


SCANNING_KEYS = web.AppKey("scanning_keys", ScanningKeys)


async def github_report(request: web.Request) -> web.Response:
    keys = request.app[SCANNING_KEYS]
    if not keys.configured:
        return error_response(404, "secret scanning intake is not configured", "NOT_FOUND")
    runtime = request.app[RUNTIME]
    try:
        client_addr = runtime.gate.admit_report(request)
    except Refusal as refusal:
        return refusal_response(refusal)
    if request.content_length is not None and request.content_length > secret_scanning.MAX_REPORT_BYTES:
        return error_response(413, f"a report is at most {secret_scanning.MAX_REPORT_BYTES} bytes", "BAD_REQUEST")
    body = await read_in_time(request, runtime.config.limits.body_timeout)
    if len(body) > secret_scanning.MAX_REPORT_BYTES:
        return error_response(413, f"a report is at most {secret_scanning.MAX_REPORT_BYTES} bytes", "BAD_REQUEST")
    headers = request.headers
    if (
        len(headers.getall(secret_scanning.KEY_ID_HEADER, [])) > 1
        or len(headers.getall(secret_scanning.SIGNATURE_HEADER, [])) > 1
    ):
        return error_response(401, "one signature and one key identifier, please", "UNAUTHENTICATED")
    signed = secret_scanning.signature_valid(
        keys.current(),
        headers.get(secret_scanning.KEY_ID_HEADER),
        headers.get(secret_scanning.SIGNATURE_HEADER),
        body,
    )
    if not signed:
        return error_response(401, "missing or invalid GitHub signature", "UNAUTHENTICATED")
    try:
        matches = secret_scanning.parse_report(body)
    except secret_scanning.ReportProblem as problem:
        return error_response(400, str(problem), "BAD_REQUEST")
    actor = Actor(REPORTER, "secret_scanning", client_addr)
    answers = []
    for match in matches:
        known = await service_tokens.report_found(runtime.backend, actor, match.token, match.url)
        answers.append(secret_scanning.feedback(match, known))
    return json_response(answers)


def add_routes(app: web.Application, keys_file: Path | None) -> None:
    app[SCANNING_KEYS] = ScanningKeys(keys_file)
    app.router.add_post(ROUTE, github_report)
