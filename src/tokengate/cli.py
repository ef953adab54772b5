"""The ``tokengate`` command line: JSON on stdout, one-line errors on stderr (exit 2 usage, 1 failure)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import asyncpg

from tokengate.auth.listener import ListenerDeaf
from tokengate.auth.scim_tokens import display_prefix as scim_display_prefix
from tokengate.config import Config, ConfigError, load_config
from tokengate.core import global_ids, tokens
from tokengate.core import trust_policies as trust_rules
from tokengate.core.catalog import PERMISSION_SET_KEYS, PLANS
from tokengate.core.errors import DomainError, NotFound
from tokengate.core.limits import divided
from tokengate.core.policy import Grant
from tokengate.http.observability import AccessLog, configure_logging
from tokengate.services import (
    OPERATOR,
    Backend,
    accounts,
    ip_restrictions,
    projects,
    scim,
    service_tokens,
    sign_in,
    single_sign_on,
    trust_policies,
    user_tokens,
    users,
)
from tokengate.services.sign_in import INVITATION_PATH, sign_in_timeouts
from tokengate.store import database as db
from tokengate.store import tokens as token_store
from tokengate.store import trust_policies as trust_policy_store
from tokengate.store import users as user_store
from tokengate.store.migrations import MigrationError, migrate
from tokengate.store.scim import ScimTokenRow
from tokengate.store.trust_policies import TrustPolicyRow
from tokengate.store.users import UserRow


class Failure(Exception):
    """An expected failure: printed as one line, exit code 1."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _plan(text: str) -> str:
    plan = text.strip().upper()
    if plan not in PLANS:
        raise argparse.ArgumentTypeError(f"unknown plan {text!r} (choose from {', '.join(p.lower() for p in PLANS)})")
    return plan


def _grant(text: str) -> Grant:
    """``SET`` (all projects) or ``SET:PROJECT_ID,...`` (those projects); SET is case-insensitive."""
    key, colon, projects = text.partition(":")
    permission_set = key.strip().upper()
    if permission_set not in PERMISSION_SET_KEYS:
        raise argparse.ArgumentTypeError(f"unknown permission set {key.strip()!r}")
    if not colon:
        return Grant(permission_set, True, ())
    project_ids = tuple(p.strip() for p in projects.split(",") if p.strip())
    if not project_ids:
        raise argparse.ArgumentTypeError(f"{permission_set}: list at least one project id after ':'")
    return Grant(permission_set, False, project_ids)


def _created_at(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected an ISO 8601 time such as 2022-03-01T12:00:00Z") from None
    if when.tzinfo is None:  # a time without offset is read as UTC
        when = when.replace(tzinfo=UTC)
    if when > datetime.now(UTC):
        raise argparse.ArgumentTypeError("the creation time is in the future")
    return when


def _workers(text: str) -> int:
    if text.strip() == "auto":
        return os.cpu_count() or 1
    if not text.strip().isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError("expected a number of processes from 1 to 256, or auto")
    return int(text)


def _legacy_secret(text: str) -> str:
    # The message never repeats the value: it is a secret. "-" reads it from stdin, out of sight of `ps`.
    if text == "-":
        text = sys.stdin.readline().strip()
    try:
        parsed = tokens.parse_token(text)
    except tokens.MalformedToken:
        parsed = None
    if parsed is None or parsed.format != "legacy":
        raise argparse.ArgumentTypeError(f"must be {tokens.LEGACY_LENGTH} lowercase hexadecimal characters")
    return text


def build_parser() -> Parser:
    parser = Parser(prog="tokengate", description="GraphQL authorization service for service account tokens")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def with_data_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--data-dir", type=Path, default=None, help="embedded database directory (default .tokengate/)"
        )
        return sub

    serve = with_data_dir(commands.add_parser("serve", help="apply migrations, then serve HTTP"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-format", choices=("json", "text"), default="json", help="json lines, or text for humans")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="processes serving the port (SO_REUSEPORT), each with 1/N of every per-instance limit; auto: one per core",
    )
    serve.add_argument("--worker-of", type=int, default=0, help=argparse.SUPPRESS)  # set by the parent only
    serve.add_argument("--ready-fd", type=int, default=-1, help=argparse.SUPPRESS)  # set by the parent only
    with_data_dir(commands.add_parser("migrate", help="apply pending migrations and exit"))
    bootstrap = with_data_dir(commands.add_parser("bootstrap", help="create an account, its admin and a token"))
    bootstrap.add_argument("--account-name", required=True)
    bootstrap.add_argument("--plan", required=True, type=_plan)
    bootstrap.add_argument("--admin-email", required=True)
    invite = with_data_dir(
        commands.add_parser(
            "invite-user",
            help="a one-time sign-in link for a member (revokes their older links and passkeys): a way back in",
        )
    )
    invite.add_argument("--account-id", required=True)
    invite.add_argument("--user-id", required=True)
    issue = with_data_dir(commands.add_parser("issue-user-token", help="issue a personal token for a user"))
    issue.add_argument("--user-id", required=True)
    issue.add_argument("--name", default="personal token")
    legacy = with_data_dir(
        commands.add_parser("import-legacy-token", help="store a pre-2023-07-18 token (40 hex characters, slow hash)")
    )
    legacy.add_argument("--account-id", required=True)
    legacy.add_argument("--name", required=True)
    legacy.add_argument("--created-at", required=True, type=_created_at, help="ISO 8601, e.g. 2022-03-01T12:00:00Z")
    legacy.add_argument(
        "--grant",
        required=True,
        action="append",
        type=_grant,
        metavar="SET[:PROJECT_ID,...]",
        help="a permission set for all projects, or for the listed projects; repeat for more",
    )
    legacy.add_argument(
        "--secret",
        type=_legacy_secret,
        help="the existing token; '-' reads it from stdin (keeps it out of the process list); generated when omitted",
    )
    with_data_dir(
        commands.add_parser(
            "key-status",
            help="count usable tokens under each configured server key (TOKENGATE_SECRET_KEY, newest first)",
        )
    )
    project = with_data_dir(commands.add_parser("create-project", help="create a project in an account"))
    project.add_argument("--account-id", required=True)
    project.add_argument("--name", required=True)
    delete = with_data_dir(
        commands.add_parser("delete-service-token", help="revoke a service token at once on every instance")
    )
    delete.add_argument("--account-id", required=True)
    delete.add_argument("--id", required=True, dest="token_id")
    unlock = with_data_dir(
        commands.add_parser(
            "disable-ip-restrictions", help="switch an account's IP restrictions off, keeping its rules"
        )
    )
    unlock.add_argument("--account-id", required=True)
    deactivate = with_data_dir(
        commands.add_parser(
            "deactivate-user", help="switch a user off: its personal tokens stop at once on every instance"
        )
    )
    deactivate.add_argument("--user-id", required=True)
    scim_create = with_data_dir(
        commands.add_parser(
            "create-scim-token", help="a SCIM token for an account's identity provider (docs/scim.md); shown once"
        )
    )
    scim_create.add_argument("--account-id", required=True)
    scim_create.add_argument("--name", required=True)
    scim_list = with_data_dir(commands.add_parser("list-scim-tokens", help="an account's SCIM tokens, as JSON"))
    scim_list.add_argument("--account-id", required=True)
    scim_list.add_argument("--include-revoked", action="store_true")
    scim_revoke = with_data_dir(
        commands.add_parser("revoke-scim-token", help="revoke a SCIM token: refused from its next request")
    )
    scim_revoke.add_argument("--account-id", required=True)
    scim_revoke.add_argument("--id", required=True, dest="token_id")
    remove_sso = with_data_dir(
        commands.add_parser(
            "remove-sso",
            help="remove an account's single sign-on (docs/sign-in.md): the way back in when its provider or "
            "enforced single sign-on locks the admins out",
        )
    )
    remove_sso.add_argument("--account-id", required=True)
    list_tokens = with_data_dir(commands.add_parser("list-user-tokens", help="a user's personal tokens, as JSON"))
    list_tokens.add_argument("--user-id", required=True)
    _trust_policy_commands(commands, with_data_dir)
    commands.add_parser("export-schema", help="print the GraphQL SDL")
    return parser


def _trust_policy_commands(commands: Any, with_data_dir: Callable[[Any], argparse.ArgumentParser]) -> None:
    """Keyless CI (docs/keyless-ci.md): trust policies from the command line."""
    create = with_data_dir(
        commands.add_parser(
            "create-trust-policy",
            help="trust a CI platform's OIDC tokens for short-lived tokens (POST /oauth/token, docs/keyless-ci.md)",
        )
    )
    create.add_argument("--account-id", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--preset", choices=("github", "gitlab", "custom"), default="custom")
    create.add_argument("--audience", required=True, help="the exact aud the tokens must carry")
    create.add_argument("--issuer", help="custom, or a self-hosted GitLab's URL (default: the platform's)")
    create.add_argument("--subject", help="custom: the exact sub")
    create.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE", help="custom: an exact claim")
    create.add_argument("--repository", help="github: owner/name")
    create.add_argument("--repository-owner-id", help="github: the owner's numeric id")
    create.add_argument("--workflow", help="github: the workflow file name (deploy.yml)")
    create.add_argument("--environment", help="github, gitlab: the job's environment")
    create.add_argument("--ref", help="github: refs/heads/main; gitlab: the branch or tag name")
    create.add_argument("--ref-type", default="branch", help="gitlab: branch or tag")
    create.add_argument("--project-path", help="gitlab: group/project")
    create.add_argument("--namespace-id", help="gitlab: the namespace's numeric id")
    create.add_argument("--project-id", help="gitlab: the project's numeric id")
    create.add_argument("--max-lifetime-seconds", type=int, default=None, help="60 to 3600 (default 900)")
    create.add_argument(
        "--grant", action="append", default=[], type=_grant, metavar="SET[:PROJECT_ID,...]", help="repeat for more"
    )
    delete = with_data_dir(
        commands.add_parser("delete-trust-policy", help="delete a trust policy; its exchanged tokens stop at once")
    )
    delete.add_argument("--account-id", required=True)
    delete.add_argument("--id", required=True, dest="policy_id")
    listing = with_data_dir(commands.add_parser("list-trust-policies", help="an account's trust policies, as JSON"))
    listing.add_argument("--account-id", required=True)


def _binding(args: argparse.Namespace) -> trust_rules.Binding:
    def need(*names: str) -> None:
        missing = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) is None]
        if missing:
            raise Failure(f"--preset {args.preset} needs {', '.join(missing)}")

    if args.preset == "github":
        need("repository", "repository_owner_id")
        return trust_rules.github_actions(
            audience=args.audience,
            repository=args.repository,
            repository_owner_id=args.repository_owner_id,
            workflow=args.workflow,
            ref=args.ref,
            environment=args.environment,
            **({"issuer": args.issuer} if args.issuer else {}),
        )
    if args.preset == "gitlab":
        need("project_path", "namespace_id", "project_id", "ref")
        return trust_rules.gitlab_ci(
            audience=args.audience,
            project_path=args.project_path,
            namespace_id=args.namespace_id,
            project_id=args.project_id,
            ref=args.ref,
            ref_type=args.ref_type,
            environment=args.environment,
            **({"issuer": args.issuer} if args.issuer else {}),
        )
    need("issuer", "subject")
    conditions = {}
    for text in args.claim:
        name, equals, value = text.partition("=")
        if not equals:
            raise Failure(f"--claim {text!r}: give NAME=VALUE")
        conditions[name] = value
    return trust_rules.Binding(args.issuer, args.audience, args.subject, conditions)


def trust_policy_json(row: TrustPolicyRow) -> dict[str, Any]:
    return {"id": row.id, **trust_policies.described(row)}


async def _create_trust_policy(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    row = await trust_policies.create(
        _backend(pool, config),
        OPERATOR,
        args.account_id,
        args.name,
        _binding(args),
        args.grant,
        args.max_lifetime_seconds,
        config.webhook_allow_private,
    )
    return trust_policy_json(row)


async def _delete_trust_policy(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    try:
        row = await trust_policies.delete(_backend(pool, config), OPERATOR, args.account_id, args.policy_id)
    except NotFound:
        raise Failure(f"no trust policy with id {args.policy_id} in account {args.account_id}") from None
    return {"id": row.id, "deleted": True}


async def _list_trust_policies(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    rows = await trust_policy_store.of_account(pool, args.account_id)
    return {"account_id": args.account_id, "trust_policies": [trust_policy_json(row) for row in rows]}


async def _with_database(config: Config, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    dsn = await db.resolve_dsn(config)
    settings = replace(config.database, pool_size=min(2, config.database.pool_size))
    pool = await db.open_pool(dsn, settings, min_size=1)
    try:
        await db.migrate_over(settings.listen_url, pool, migrate)
        return await work(pool)
    finally:
        await pool.close()


def _backend(pool: asyncpg.Pool, config: Config) -> Backend:
    # No caches here: the changes' notices reach the running servers through NOTIFY.
    return Backend(pool, config.secret_keys)


async def _bootstrap(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    backend = _backend(pool, config)
    account, user, issued = await accounts.bootstrap(backend, OPERATOR, args.account_name, args.plan, args.admin_email)
    # The first admin signs in to the pages with a passkey from this one-time link (docs/sign-in.md).
    _, secret = await sign_in.create_invitation(backend, OPERATOR, account.id, user.id, sign_in_timeouts(config))
    link = (config.sign_in.public_url or "") + INVITATION_PATH + secret
    return {"account_id": account.id, "user_id": user.id, "token": issued.text, "sign_in_link": link}


async def _invite_user(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    try:
        invitation, secret = await sign_in.create_invitation(
            _backend(pool, config), OPERATOR, args.account_id, args.user_id, sign_in_timeouts(config)
        )
    except NotFound:
        raise Failure(f"no user with id {args.user_id} in account {args.account_id}") from None
    link = (config.sign_in.public_url or "") + INVITATION_PATH + secret
    return {"id": invitation.id, "expires_at": invitation.expires_at.isoformat(), "sign_in_link": link}


async def _issue_user_token(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    try:
        issued, _ = await user_tokens.create(_backend(pool, config), OPERATOR, args.user_id, args.name)
    except NotFound:
        raise Failure(f"no user with id {args.user_id}") from None
    return {"id": global_ids.user_token_id(issued.id), "token": issued.text}  # the id GraphQL prints


async def _import_legacy_token(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    try:
        issued = await service_tokens.import_legacy(
            _backend(pool, config), OPERATOR, args.account_id, args.name, args.created_at, args.grant, args.secret
        )
    except NotFound:
        raise Failure(f"no account with id {args.account_id}") from None
    return {"id": global_ids.service_token_id(issued.id), "token": issued.text}  # the id GraphQL prints


async def _create_project(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    project = await projects.create(_backend(pool, config), OPERATOR, args.account_id, args.name)
    return {"id": project.id, "name": project.name}


async def _delete_service_token(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    key = global_ids.token_key(args.token_id, global_ids.SERVICE_TOKEN) or args.token_id  # stk_… or bare
    try:
        record = await service_tokens.delete(_backend(pool, config), OPERATOR, args.account_id, key)
    except NotFound:
        raise Failure(f"no service token with id {args.token_id} in account {args.account_id}") from None
    return {"id": global_ids.service_token_id(record.id), "state": record.state.upper()}


async def _disable_ip_restrictions(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    settings = await ip_restrictions.disable(_backend(pool, config), OPERATOR, args.account_id)
    return {"account_id": args.account_id, "enabled": settings.enabled, "rules": len(settings.rules)}


async def _existing_user(pool: asyncpg.Pool, user_id: str) -> UserRow:
    user = await user_store.get_user(pool, user_id)
    if user is None:
        raise Failure(f"no user with id {user_id}")
    return user


async def _deactivate_user(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    user = await _existing_user(pool, args.user_id)
    row = await users.deactivate(_backend(pool, config), OPERATOR, user.account_id, user.id)
    return {"id": row.id, "email": row.email, "state": row.state.upper()}


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _scim_token(row: ScimTokenRow) -> dict[str, Any]:
    return {
        "id": global_ids.scim_token_id(row.id),
        "name": row.name,
        "display_prefix": scim_display_prefix(row.id),
        "created_at": _moment(row.created_at),
        "last_used_at": _moment(row.last_used_at),
        "revoked_at": _moment(row.revoked_at),
    }


async def _create_scim_token(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    try:
        issued, row = await scim.create_token(_backend(pool, config), OPERATOR, args.account_id, args.name)
    except NotFound:
        raise Failure(f"no account with id {args.account_id}") from None
    return {**_scim_token(row), "token": issued.text}


async def _list_scim_tokens(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    rows = await scim.list_tokens(pool, OPERATOR, args.account_id, args.include_revoked)
    return {"account_id": args.account_id, "scim_tokens": [_scim_token(row) for row in rows]}


async def _revoke_scim_token(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    key = global_ids.scim_token_key(args.token_id)
    try:
        if key is None:
            raise NotFound(scim.SCIM_TOKEN)
        row = await scim.revoke_token(_backend(pool, config), OPERATOR, args.account_id, key)
    except NotFound:
        raise Failure(f"no SCIM token with id {args.token_id} in account {args.account_id}") from None
    return _scim_token(row)


async def _remove_sso(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    try:
        row = await single_sign_on.remove(_backend(pool, config), OPERATOR, args.account_id)
    except NotFound:
        raise Failure(f"account {args.account_id} has no single sign-on") from None
    return {"account_id": row.account_id, "issuer": row.settings.issuer, "removed": True}


async def _list_user_tokens(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    user = await _existing_user(pool, args.user_id)
    records = (await token_store.user_tokens_of_users(pool, [user.id]))[user.id]
    now = datetime.now(UTC)
    return {
        "user_id": user.id,
        "state": user.state.upper(),
        "tokens": [
            {
                "id": global_ids.user_token_id(record.id),
                "name": record.name,
                "display_prefix": tokens.display_prefix_for("user", record.format, record.id),
                "state": tokens.token_state(record.state, record.expires_at, now),
                "created_at": _moment(record.created_at),
                "last_used_at": _moment(record.last_used_at),
                "expires_at": _moment(record.expires_at),
            }
            for record in records
        ],
    }


async def _key_status(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """What removing an older key would break. Nothing is re-hashed here: that needs a token's text, which
    the server sees only when the token is used (auth.py re-hashes it under the newest key then)."""
    configured = [tokens.key_id(key) for key in config.secret_keys]
    counts = await token_store.usable_tokens_by_key(pool)
    v2 = {count.key_id: count.tokens for count in counts if count.format == "v2"}
    return {
        "keys": [
            {"position": position, "key_id": key_id, "newest": position == 1, "tokens": v2.get(key_id, 0)}
            for position, key_id in enumerate(configured, start=1)
        ],
        # Hashed under a key that is no longer configured: they no longer validate.
        "unknown_key": sum(n for key_id, n in v2.items() if key_id is not None and key_id not in configured),
        # Hashed before key ids were recorded (migration 004): recorded and re-hashed at their next use.
        "not_recorded": v2.get(None, 0),
        "legacy": sum(count.tokens for count in counts if count.format == "legacy"),  # argon2id: no server key
    }


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (libuv: a cheaper loop and transport for the same asyncio code)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(config: Config, args: argparse.Namespace) -> None:
    from tokengate.app import create_app
    from tokengate.http import serving, workers

    configure_logging(args.log_format, args.log_level)
    log = logging.getLogger("tokengate")
    url = f"http://{args.host}:{args.port}/graphql"
    if args.workers > 1 and not args.worker_of:
        worker_argv = ["serve", "--host", args.host, "--port", str(args.port), "--log-format", args.log_format]
        worker_argv += ["--log-level", args.log_level, "--data-dir", str(config.data_dir)]
        try:
            workers.supervise(config, args.workers, worker_argv, url)
        except workers.WorkersFailed as problem:
            raise Failure(str(problem)) from None
        return
    dsn = None
    if args.worker_of:  # one of the parent's workers: its share of the limits, the database the parent migrated
        config = replace(config, limits=divided(config.limits, args.worker_of))
        dsn = os.environ.get(workers.WORKER_DATABASE_URL)

    def listening() -> None:
        if args.ready_fd < 0:
            log.info("serving %s", url)
            return
        log.info("worker listening on %s:%s", args.host, args.port)
        os.write(args.ready_fd, b"1")
        os.close(args.ready_fd)
        _stop_when_orphaned(os.getppid())

    access_log = AccessLog(log_format=args.log_format, enabled=args.log_level in ("debug", "info"))
    app = create_app(config, dsn=dsn, migrate_on_start=not args.worker_of, access_log=access_log)
    try:
        serving.serve(
            app, config, args.host, args.port, loop=_event_loop(), listening=listening, reuse_port=bool(args.worker_of)
        )
    except serving.ListenFailed as problem:
        raise Failure(str(problem)) from None


def _stop_when_orphaned(parent: int, every: float = 1.0) -> None:
    """A worker whose parent is gone (killed without passing SIGTERM on) stops as if it had been asked."""
    loop = asyncio.get_running_loop()

    def check() -> None:
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            loop.call_later(every, check)

    loop.call_later(every, check)


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export-schema":
        from tokengate.graphql.schema.schema import sdl

        sys.stdout.write(sdl())
        return 0
    config = load_config(args.data_dir)
    if args.command == "serve":
        _serve(config, args)
        return 0
    commands: dict[str, Callable[[asyncpg.Pool, Config, argparse.Namespace], Awaitable[Any]]] = {
        "bootstrap": _bootstrap,
        "invite-user": _invite_user,
        "issue-user-token": _issue_user_token,
        "import-legacy-token": _import_legacy_token,
        "key-status": _key_status,
        "create-project": _create_project,
        "delete-service-token": _delete_service_token,
        "disable-ip-restrictions": _disable_ip_restrictions,
        "deactivate-user": _deactivate_user,
        "list-user-tokens": _list_user_tokens,
        "create-trust-policy": _create_trust_policy,
        "delete-trust-policy": _delete_trust_policy,
        "list-trust-policies": _list_trust_policies,
        "create-scim-token": _create_scim_token,
        "list-scim-tokens": _list_scim_tokens,
        "revoke-scim-token": _revoke_scim_token,
        "remove-sso": _remove_sso,
    }
    if args.command == "migrate":
        asyncio.run(_with_database(config, lambda pool: asyncio.sleep(0)))
        print(json.dumps({"migrated": True}))
        return 0
    result = asyncio.run(_with_database(config, lambda pool: commands[args.command](pool, config, args)))
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> NoReturn:
    try:
        code = run(argv)
    except (Failure, DomainError, ConfigError, MigrationError, db.DatabaseProblem, ListenerDeaf) as problem:
        print(f"tokengate: error: {problem}", file=sys.stderr)
        code = 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
        # Where it failed is unknown here: name the configured database (host and name, never a password).
        configured = os.environ.get("TOKENGATE_DATABASE_URL") or os.environ.get("DATABASE_URL")
        print(f"tokengate: error: database unavailable: {db.explain(problem, configured)}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
