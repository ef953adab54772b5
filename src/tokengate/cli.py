"""The ``tokengate`` command line: JSON on stdout, one-line errors on stderr (exit 2 usage, 1 failure)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import asyncpg

from tokengate import db
from tokengate.catalog import PLANS
from tokengate.config import Config, ConfigError, load_config
from tokengate.lifecycle import CLI_ACTOR, bootstrap_account, issue_user_token
from tokengate.observability import configure_logging
from tokengate.store import users as user_store
from tokengate.store.migrations import MigrationError, migrate


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
    with_data_dir(commands.add_parser("migrate", help="apply pending migrations and exit"))
    bootstrap = with_data_dir(commands.add_parser("bootstrap", help="create an account, its admin and a token"))
    bootstrap.add_argument("--account-name", required=True)
    bootstrap.add_argument("--plan", required=True, type=_plan)
    bootstrap.add_argument("--admin-email", required=True)
    issue = with_data_dir(commands.add_parser("issue-user-token", help="issue a personal token for a user"))
    issue.add_argument("--user-id", required=True)
    issue.add_argument("--name", default="personal token")
    commands.add_parser("export-schema", help="print the GraphQL SDL")
    return parser


async def _with_database(config: Config, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    dsn = await db.resolve_dsn(config)
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        return await work(pool)
    finally:
        await pool.close()


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 255:
        raise Failure(f"{what} must be 1 to 255 characters")
    return value


async def _bootstrap(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    name = _name(args.account_name, "--account-name")
    email = args.admin_email.strip()
    if "@" not in email:
        raise Failure("--admin-email must be an email address")
    async with pool.acquire() as conn, conn.transaction():
        account, user, issued = await bootstrap_account(conn, config.secret_keys[0], name, args.plan, email)
    return {"account_id": account.id, "user_id": user.id, "token": issued.text}


async def _issue_user_token(pool: asyncpg.Pool, config: Config, args: argparse.Namespace) -> dict[str, str]:
    name = _name(args.name, "--name")
    async with pool.acquire() as conn, conn.transaction():
        user = await user_store.get_user(conn, args.user_id)
        if user is None:
            raise Failure(f"no user with id {args.user_id}")
        issued = await issue_user_token(conn, config.secret_keys[0], user, name, CLI_ACTOR)
    return {"id": issued.id, "token": issued.text}


def _serve(config: Config, args: argparse.Namespace) -> None:
    from aiohttp import web

    from tokengate.http import create_app

    configure_logging(args.log_format, args.log_level)
    logging.getLogger("tokengate").info("serving http://%s:%s/graphql", args.host, args.port)
    web.run_app(create_app(config), host=args.host, port=args.port, print=None, access_log=None)


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export-schema":
        from tokengate.api.schema import sdl

        sys.stdout.write(sdl())
        return 0
    config = load_config(args.data_dir)
    if args.command == "serve":
        _serve(config, args)
        return 0
    commands: dict[str, Callable[[asyncpg.Pool, Config, argparse.Namespace], Awaitable[Any]]] = {
        "bootstrap": _bootstrap,
        "issue-user-token": _issue_user_token,
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
    except (Failure, ConfigError, MigrationError) as problem:
        print(f"tokengate: error: {problem}", file=sys.stderr)
        code = 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
        print(f"tokengate: error: database unavailable: {type(problem).__name__}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
