"""Configuration from the environment and the data directory."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tokengate.core.leak_reports import KeysProblem, load_public_keys
from tokengate.core.limits import Limits, limits_from_env
from tokengate.core.tokens import STALE_PRINCIPAL_SECONDS, derive_key, random_base62
from tokengate.core.trusted_documents import ManifestError, TrustedDocuments, parse_manifest

DEFAULT_DATA_DIR = Path(".tokengate")
KEY_FILE = "secret.key"
MIN_KEY_LENGTH = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """A configuration problem the operator must fix; the message says how."""


@dataclass(frozen=True)
class WebhookTiming:
    """How webhook deliveries and scheduled notices are paced (tests shorten these)."""

    poll_seconds: float = 1.0  # how often an idle delivery worker looks for due rows other instances queued
    retry_first_seconds: float = 10.0  # the first retry; each later one waits twice as long
    retry_max_seconds: float = 3600.0
    retry_window_seconds: float = 24 * 3600.0  # then the delivery fails and the webhook is marked failing
    request_timeout_seconds: float = 10.0
    lease_seconds: float = 60.0  # a claimed row's lease: longer than any request may take
    notice_interval_seconds: float = 300.0  # expiry and disuse notices (TOKENGATE_TOKEN_NOTICE_INTERVAL_SECONDS)


@dataclass(frozen=True)
class DatabaseSettings:
    """How this instance reaches PostgreSQL besides ``database_url`` (docs/operations.md "Connection poolers")."""

    # A direct connection (no transaction pooler) for LISTEN and migrations; when set, ``database_url`` may go
    # through a transaction-mode pooler (TOKENGATE_LISTEN_DATABASE_URL).
    listen_url: str | None = None
    pool_size: int = 10  # TOKENGATE_DB_POOL_SIZE: connections of the request pool (the listener holds one more)
    acquire_timeout_seconds: float = 5.0  # TOKENGATE_DB_ACQUIRE_TIMEOUT_SECONDS: then 503 with Retry-After
    heartbeat_seconds: float = 1.0  # TOKENGATE_HEARTBEAT_SECONDS: how often the instance NOTIFYs itself


@dataclass(frozen=True)
class SignInSettings:
    """Browser sessions, invitations and passkeys (docs/sign-in.md "Settings"); seconds, so tests can shorten them."""

    session_idle_seconds: float = 3600.0  # TOKENGATE_SESSION_IDLE_SECONDS: a session unused this long ends
    session_absolute_seconds: float = 86_400.0  # TOKENGATE_SESSION_ABSOLUTE_SECONDS: and ends this long after sign-in
    invitation_seconds: float = 7 * 86_400.0  # TOKENGATE_INVITATION_SECONDS: how long an invitation link works
    ceremony_seconds: float = 300.0  # TOKENGATE_PASSKEY_CEREMONY_SECONDS: a passkey challenge's lifetime
    # TOKENGATE_RECENT_SIGN_IN_SECONDS: a session older than this must sign in again for a sensitive change
    recent_sign_in_seconds: float = 600.0
    # TOKENGATE_PUBLIC_URL: the pages' origin (https://tokengate.example.com); the passkeys' relying-party id is its
    # host name. None: the Host of each request (http://localhost:PORT in development).
    public_url: str | None = None


@dataclass(frozen=True)
class Config:
    data_dir: Path
    database_url: str | None  # None: embedded PostgreSQL in data_dir
    secret_keys: tuple[bytes, ...]  # newest first; new hashes use the first
    trusted_proxies: tuple[IPNetwork, ...] = ()
    public_introspection: bool = True
    principal_cache_size: int = 10_000
    # While the database is unreachable, how long after its validation a cached principal keeps serving (0: none)
    stale_principal_seconds: float = STALE_PRINCIPAL_SECONDS
    cors_origins: tuple[str, ...] = ()  # exact origins allowed to call from a browser
    trusted_documents: TrustedDocuments | None = None  # None: any document runs (and APQ registers)
    webhook_allow_private: bool = False  # webhooks to private and loopback addresses, and over plain http
    github_scanning_keys: Path | None = None  # GitHub's secret-scanning public_keys document
    webhook_timing: WebhookTiming = WebhookTiming()
    # Keyless CI (docs/keyless-ci.md): an issuer's discovery document and JWKS are fetched within this many seconds
    # (TOKENGATE_FEDERATION_FETCH_TIMEOUT_SECONDS), and refetched for an unknown kid at most once per cooldown.
    federation_fetch_timeout_seconds: float = 5.0
    federation_refetch_cooldown_seconds: float = 30.0
    limits: Limits = field(default_factory=Limits)  # rates, budgets, quotas and timeouts (limits.py; README "Limits")
    database: DatabaseSettings = DatabaseSettings()
    sign_in: SignInSettings = SignInSettings()


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def parse_networks(text: str, variable: str) -> tuple[IPNetwork, ...]:
    networks = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                f"{variable}: {part!r} is not an IP network (expected a CIDR such as 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def parse_origins(text: str) -> tuple[str, ...]:
    """``TOKENGATE_CORS_ORIGINS``: exact origins such as ``https://app.example.com``, comma-separated."""
    origins = []
    for origin in (part.strip().rstrip("/") for part in text.split(",")):
        if not origin:
            continue
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest or "*" in origin:
            raise ConfigError(f"TOKENGATE_CORS_ORIGINS: {origin!r} is not an exact origin like https://app.example.com")
        origins.append(origin)
    return tuple(origins)


MAX_NOTICE_INTERVAL_SECONDS = 86_400.0
MAX_STALE_PRINCIPAL_SECONDS = 86_400.0


def parse_seconds(text: str | None, variable: str, default: float, maximum: float, *, zero: bool = False) -> float:
    """A number of seconds from the environment: ``default`` when unset; above 0 (or 0 too, with ``zero``) and at
    most ``maximum``, else ``ConfigError`` naming ``variable``."""
    if text is None or not text.strip():
        return default
    try:
        seconds = float(text.strip())
    except ValueError:
        seconds = float("nan")
    lowest_ok = seconds >= 0 if zero else seconds > 0
    if not lowest_ok or not seconds <= maximum:  # NaN and infinities fail here too
        lowest = "from 0 to" if zero else "above 0 and at most"
        raise ConfigError(f"{variable} must be a number of seconds {lowest} {maximum:g} (default {default:g})")
    return seconds


def parse_stale_principal_seconds(text: str | None) -> float:
    """``TOKENGATE_STALE_PRINCIPAL_SECONDS``: while the database is unreachable, how many seconds after its last
    validation a cached principal keeps serving (default 300); 0 serves none, at most a day."""
    return parse_seconds(
        text, "TOKENGATE_STALE_PRINCIPAL_SECONDS", STALE_PRINCIPAL_SECONDS, MAX_STALE_PRINCIPAL_SECONDS, zero=True
    )


def parse_notice_interval(text: str | None) -> float:
    """``TOKENGATE_TOKEN_NOTICE_INTERVAL_SECONDS``: seconds between two rounds of the expiry and disuse notices
    (default 300); more than 0, at most a day."""
    return parse_seconds(
        text,
        "TOKENGATE_TOKEN_NOTICE_INTERVAL_SECONDS",
        WebhookTiming.notice_interval_seconds,
        MAX_NOTICE_INTERVAL_SECONDS,
    )


def parse_secret_keys(text: str) -> tuple[bytes, ...]:
    """``TOKENGATE_SECRET_KEY``: one key, or several separated by commas, newest first."""
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise ConfigError("TOKENGATE_SECRET_KEY is empty")
    for index, key in enumerate(keys, start=1):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"TOKENGATE_SECRET_KEY: key {index} is shorter than {MIN_KEY_LENGTH} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
    return tuple(derive_key(key) for key in keys)


def load_trusted_documents(path: str | None) -> TrustedDocuments | None:
    """``TOKENGATE_TRUSTED_DOCUMENTS``: the manifest file of the only documents this server runs."""
    if path is None or not path.strip():
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        raise ConfigError(f"TOKENGATE_TRUSTED_DOCUMENTS: cannot read {path}: {problem}") from None
    try:
        return parse_manifest(text)
    except ManifestError as problem:
        raise ConfigError(f"TOKENGATE_TRUSTED_DOCUMENTS: {path}: {problem}") from None


def _embedded_key(data_dir: Path) -> str:
    """Read the server key kept in the data directory, creating it (mode 0600) on first use."""
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(random_base62(64) + "\n")
    return path.read_text(encoding="ascii").strip()


def load_config(data_dir: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    directory = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    database_url = env.get("TOKENGATE_DATABASE_URL") or env.get("DATABASE_URL") or None
    key_text = env.get("TOKENGATE_SECRET_KEY")
    if not key_text:
        if database_url is not None:
            raise ConfigError(
                "TOKENGATE_SECRET_KEY is required with an external database "
                "(every instance must hash tokens with the same key)"
            )
        key_text = _embedded_key(directory.resolve())
    cors_origins = parse_origins(env.get("TOKENGATE_CORS_ORIGINS", ""))
    cache_size = env.get("TOKENGATE_CACHE_SIZE", "10000")
    if not cache_size.isdigit() or int(cache_size) < 1:
        raise ConfigError("TOKENGATE_CACHE_SIZE must be a positive integer")
    scanning_keys = env.get("TOKENGATE_GITHUB_SCANNING_KEYS", "").strip()
    try:
        limits = limits_from_env(env)
    except ValueError as problem:
        raise ConfigError(str(problem)) from None
    return Config(
        data_dir=directory.resolve(),
        database_url=database_url,
        secret_keys=parse_secret_keys(key_text),
        trusted_proxies=parse_networks(env.get("TOKENGATE_TRUSTED_PROXIES", ""), "TOKENGATE_TRUSTED_PROXIES"),
        public_introspection=_flag(env.get("TOKENGATE_PUBLIC_INTROSPECTION"), True),
        principal_cache_size=int(cache_size),
        stale_principal_seconds=parse_stale_principal_seconds(env.get("TOKENGATE_STALE_PRINCIPAL_SECONDS")),
        cors_origins=cors_origins,
        trusted_documents=load_trusted_documents(env.get("TOKENGATE_TRUSTED_DOCUMENTS")),
        webhook_allow_private=_flag(env.get("TOKENGATE_WEBHOOK_ALLOW_PRIVATE"), False),
        github_scanning_keys=checked_scanning_keys(Path(scanning_keys)) if scanning_keys else None,
        webhook_timing=WebhookTiming(
            notice_interval_seconds=parse_notice_interval(env.get("TOKENGATE_TOKEN_NOTICE_INTERVAL_SECONDS"))
        ),
        federation_fetch_timeout_seconds=_positive(env, "TOKENGATE_FEDERATION_FETCH_TIMEOUT_SECONDS", 5.0, 30.0),
        federation_refetch_cooldown_seconds=_positive(
            env, "TOKENGATE_FEDERATION_REFETCH_COOLDOWN_SECONDS", 30.0, 3600.0
        ),
        limits=limits,
        database=database_settings(env),
        sign_in=sign_in_settings(env),
    )


def _positive(env: Mapping[str, str], name: str, default: float, maximum: float, *, integer: bool = False) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= maximum:  # NaN and infinities fail here too
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigError(f"{name} must be {kind} above 0 and at most {maximum:g} (default {default:g})")
    return value


def database_settings(env: Mapping[str, str]) -> DatabaseSettings:
    """``TOKENGATE_LISTEN_DATABASE_URL``, ``TOKENGATE_DB_POOL_SIZE``, ``TOKENGATE_DB_ACQUIRE_TIMEOUT_SECONDS`` and
    ``TOKENGATE_HEARTBEAT_SECONDS``."""
    defaults = DatabaseSettings()
    return DatabaseSettings(
        listen_url=env.get("TOKENGATE_LISTEN_DATABASE_URL", "").strip() or None,
        pool_size=int(_positive(env, "TOKENGATE_DB_POOL_SIZE", defaults.pool_size, 1000, integer=True)),
        acquire_timeout_seconds=_positive(
            env, "TOKENGATE_DB_ACQUIRE_TIMEOUT_SECONDS", defaults.acquire_timeout_seconds, 600
        ),
        heartbeat_seconds=_positive(env, "TOKENGATE_HEARTBEAT_SECONDS", defaults.heartbeat_seconds, 60),
    )


def parse_public_url(text: str) -> str | None:
    """``TOKENGATE_PUBLIC_URL``: the origin people open the pages at, such as https://tokengate.example.com."""
    origin = text.strip().rstrip("/")
    if not origin:
        return None
    scheme, _, host = origin.partition("://")
    if scheme not in ("http", "https") or not host or "/" in host or "@" in host:
        raise ConfigError(f"TOKENGATE_PUBLIC_URL: {origin!r} is not an origin like https://tokengate.example.com")
    return origin


def sign_in_settings(env: Mapping[str, str]) -> SignInSettings:
    """The ``TOKENGATE_SESSION_*``, ``TOKENGATE_INVITATION_SECONDS``, ``TOKENGATE_PASSKEY_CEREMONY_SECONDS``,
    ``TOKENGATE_RECENT_SIGN_IN_SECONDS`` and ``TOKENGATE_PUBLIC_URL`` settings."""
    defaults = SignInSettings()
    year = 366 * 86_400.0
    return SignInSettings(
        session_idle_seconds=_positive(env, "TOKENGATE_SESSION_IDLE_SECONDS", defaults.session_idle_seconds, year),
        session_absolute_seconds=_positive(
            env, "TOKENGATE_SESSION_ABSOLUTE_SECONDS", defaults.session_absolute_seconds, year
        ),
        invitation_seconds=_positive(env, "TOKENGATE_INVITATION_SECONDS", defaults.invitation_seconds, year),
        ceremony_seconds=_positive(env, "TOKENGATE_PASSKEY_CEREMONY_SECONDS", defaults.ceremony_seconds, 3600),
        recent_sign_in_seconds=_positive(
            env, "TOKENGATE_RECENT_SIGN_IN_SECONDS", defaults.recent_sign_in_seconds, year
        ),
        public_url=parse_public_url(env.get("TOKENGATE_PUBLIC_URL", "")),
    )


def checked_scanning_keys(path: Path) -> Path:
    """``TOKENGATE_GITHUB_SCANNING_KEYS``: a readable file holding GitHub's ``public_keys`` document."""
    try:
        load_public_keys(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError) as problem:
        raise ConfigError(f"TOKENGATE_GITHUB_SCANNING_KEYS: cannot read {path}: {type(problem).__name__}") from None
    except KeysProblem as problem:
        raise ConfigError(f"TOKENGATE_GITHUB_SCANNING_KEYS: {path}: {problem}") from None
    return path.resolve()
