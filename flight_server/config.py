"""Server configuration: one frozen object built once at start-up from flags, env vars, a TOML file and defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A setting has a bad value; the message names the setting and what is wrong."""


@dataclass(frozen=True)
class Setting:
    """One configurable value: its flag/env/file key, type, default and help text."""

    name: str  # attribute and TOML key
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$", re.IGNORECASE)


def _size(text: str) -> str:
    if not _SIZE.match(text):
        raise ValueError(f"{text!r} is not a size like '4GB' or '512MB'")
    return text.strip().upper().replace(" ", "")


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{value} must be a positive whole number")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


def _choice(text: str, options: tuple[str, ...]) -> str:
    value = text.strip().lower()
    if value not in options:
        raise ValueError(f"{text!r} is not one of {', '.join(options)}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port (0-65535)")
    return value


def _percentage(text: str) -> float:
    value = float(text)
    if not 0 < value <= 100:
        raise ValueError(f"{value} must be between 0 and 100")
    return value


def _log_level(text: str) -> str:
    value = text.strip().lower()
    if value not in ("debug", "info", "warning", "error"):
        raise ValueError(f"{text!r} is not one of debug, info, warning, error")
    return value


def _lake_catalog(text: str) -> str:
    # SQL can read an attached database's connection string (duckdb_databases()): no passwords in it.
    if "password" in text.lower():
        raise ValueError("put the catalog's password in PGPASSWORD (or ~/.pgpass), not in the connection string")
    return text.strip()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "FLIGHT_HOST", "127.0.0.1", "Address to listen on."),
    Setting("port", "FLIGHT_PORT", 31337, "gRPC port for Flight SQL.", _port),
    Setting("data_dir", "FLIGHT_DATA_DIR", "data", "Folder for the database file and spill files."),
    Setting("database", "DUCKDB_DATABASE_PATH", "", "DuckDB file to serve, or ':memory:' "
            "(default: flight.duckdb in the data folder)."),
    Setting("read_only", "DUCKDB_READ_ONLY", False, "Open the database read-only.", _bool),
    Setting("memory_limit", "DUCKDB_MEMORY_LIMIT", "", "DuckDB memory_limit, e.g. '4GB' (capped by --max-memory-percentage).",
            _size),
    Setting("max_memory_percentage", "DUCKDB_MAX_MEMORY_PERCENTAGE", 80.0,
            "Cap memory_limit at this percent of the memory available to the process.", _percentage),
    Setting("worker_threads", "DUCKDB_WORKER_THREADS", 0, "DuckDB threads (0: one per core).",
            _non_negative_int),
    Setting("max_temp_directory_size", "DUCKDB_MAX_TEMP_DIRECTORY_SIZE", "",
            "Cap on spill files in the data folder, e.g. '20GB'.", _size),
    Setting("pool_size", "FLIGHT_POOL_SIZE", 64, "Most client sessions (DuckDB connections) at once.",
            _positive_int),
    Setting("session_idle_timeout", "FLIGHT_SESSION_IDLE_TIMEOUT", 900.0,
            "Seconds before an idle session is closed and its transaction rolled back (0: never).",
            _non_negative_float),
    Setting("max_prepared_statements", "FLIGHT_MAX_PREPARED_STATEMENTS", 256,
            "Prepared statements kept per session (oldest closed first).", _positive_int),
    Setting("max_concurrent_statements", "FLIGHT_MAX_CONCURRENT_STATEMENTS", 32,
            "Statements executing (or streaming) at once; more wait in the queue.", _positive_int),
    Setting("max_queued_statements", "FLIGHT_MAX_QUEUED_STATEMENTS", 128,
            "Statements that may wait for admission; beyond that they are refused.", _non_negative_int),
    Setting("queue_timeout", "FLIGHT_QUEUE_TIMEOUT", 30.0, "Seconds a statement may wait for admission.",
            _non_negative_float),
    Setting("statement_timeout", "FLIGHT_STATEMENT_TIMEOUT", 0.0,
            "Seconds before a statement is interrupted (0: none); sessions may override it.",
            _non_negative_float),
    Setting("max_sessions_per_user", "FLIGHT_MAX_SESSIONS_PER_USER", 0,
            "Sessions per user (0: half of --pool-size): when the pool is full, the oldest idle session of a user "
            "over it is reclaimed for the next client. Without auth the user is the client's IP address.",
            _non_negative_int),
    Setting("max_statements_per_user", "FLIGHT_MAX_STATEMENTS_PER_USER", 0,
            "Statements one user may have running, and as many waiting (0: half of --max-concurrent-statements);"
            " beyond that the user's statements are refused at once.", _non_negative_int),
    Setting("stall_timeout", "FLIGHT_STALL_TIMEOUT", 10.0,
            "Seconds a client may stop reading a result before its stream gives up its execution slot (the "
            "stream stays open and takes a slot again when the client reads on; 0: never).", _non_negative_float),
    Setting("idle_in_transaction_timeout", "FLIGHT_IDLE_IN_TRANSACTION_TIMEOUT", 60.0,
            "Seconds a session may sit idle inside a transaction before it is rolled back and closed (0: never).",
            _non_negative_float),
    Setting("max_parked_results", "FLIGHT_MAX_PARKED_RESULTS", 16,
            "Results a session may keep unfetched (executed, not yet read); the oldest is dropped first.",
            _positive_int),
    Setting("max_result_memory", "FLIGHT_MAX_RESULT_MEMORY", "64MB",
            "Memory for small unfetched results kept whole, all sessions together; beyond it they go to spill "
            "files.", _size),
    Setting("max_spill_per_user", "FLIGHT_MAX_SPILL_PER_USER", "",
            "Disk one user's spilled results may take (default: half of the spill space, which is "
            "--max-temp-directory-size, shared with DuckDB's own spill files).", _size),
    Setting("max_spill_per_session", "FLIGHT_MAX_SPILL_PER_SESSION", "",
            "Disk one session's spilled results may take (default: a quarter of the spill space).", _size),
    Setting("breaker_failure_threshold", "FLIGHT_BREAKER_FAILURE_THRESHOLD", 5,
            "Infrastructure failures within the window that open the circuit breaker.", _positive_int),
    Setting("breaker_window", "FLIGHT_BREAKER_WINDOW", 60.0, "Seconds over which failures are counted.",
            _non_negative_float),
    Setting("breaker_reset_timeout", "FLIGHT_BREAKER_RESET_TIMEOUT", 30.0,
            "Seconds the breaker stays open before a trial request.", _non_negative_float),
    Setting("http_port", "FLIGHT_HTTP_PORT", 8080,
            "HTTP port for /health/live, /health/ready and /metrics on the same host (0: any free port, -1: off).",
            lambda t: -1 if int(t) < 0 else _port(t)),
    Setting("shutdown_grace_period", "FLIGHT_SHUTDOWN_GRACE_PERIOD", 30.0,
            "Seconds running statements get to finish on SIGTERM before they are interrupted.",
            _non_negative_float),
    Setting("backup_dir", "FLIGHT_BACKUP_DIR", "", "Folder for the backup action's snapshots "
            "(default: backups in the data folder)."),
    Setting("auth", "FLIGHT_AUTH", "password",
            "'password' (users file / env user; an admin is created at first start if none) or 'none'.",
            lambda t: _choice(t, ("password", "none"))),
    Setting("users_file", "FLIGHT_USERS_FILE", "", "TOML users file (default: users.toml in the data folder)."),
    Setting("user", "FLIGHT_USER", "", "A single user from the environment (with FLIGHT_PASSWORD)."),
    Setting("password", "FLIGHT_PASSWORD", "", "Password (or scrypt hash) of FLIGHT_USER.", secret=True),
    Setting("user_role", "FLIGHT_USER_ROLE", "admin", "Role of FLIGHT_USER: read, write or admin.",
            lambda t: _choice(t, ("read", "write", "admin"))),
    Setting("token_secret", "FLIGHT_TOKEN_SECRET", "",
            "Key that signs bearer tokens (default: random per start, so restarts log everyone out).",
            secret=True),
    Setting("token_ttl", "FLIGHT_TOKEN_TTL", 3600.0, "Seconds a bearer token stays valid.", _non_negative_float),
    Setting("jwt_key", "FLIGHT_JWT_KEY", "", "Also accept bearer JWTs from an external issuer: the HMAC "
            "secret, or a file with the issuer's PEM public key (needs pip install '.[sso]').", secret=True),
    Setting("jwt_algorithms", "FLIGHT_JWT_ALGORITHMS", "RS256", "Comma-separated JWT algorithms to accept."),
    Setting("jwt_issuer", "FLIGHT_JWT_ISSUER", "", "Required 'iss' of external JWTs."),
    Setting("jwt_audience", "FLIGHT_JWT_AUDIENCE", "", "Required 'aud' of external JWTs."),
    Setting("jwt_role_claim", "FLIGHT_JWT_ROLE_CLAIM", "role", "JWT claim holding the role (default read)."),
    Setting("allow_unauthenticated_network", "FLIGHT_ALLOW_UNAUTHENTICATED_NETWORK", False,
            "Allow --auth none on a non-loopback address.", _bool),
    Setting("tls_cert", "FLIGHT_TLS_CERT", "", "PEM certificate chain file; enables TLS."),
    Setting("tls_key", "FLIGHT_TLS_KEY", "", "PEM private key file for --tls-cert."),
    Setting("tls_client_ca", "FLIGHT_TLS_CLIENT_CA", "", "PEM CA file; clients must present a certificate it "
            "signed (mutual TLS)."),
    Setting("sandbox", "FLIGHT_SANDBOX", True, "Confine SQL file access to --allowed-directories, block "
            "network URLs and extension installs.", _bool),
    Setting("allowed_directories", "FLIGHT_ALLOWED_DIRECTORIES", "",
            "Comma-separated folders SQL may read and write (default: files in the data folder)."),
    Setting("extensions", "DUCKDB_EXTENSIONS", "", "Comma-separated DuckDB extensions to load at start "
            "(from installed duckdb-extension-<name> packages)."),
    Setting("enable_s3", "DUCKDB_ENABLE_S3", False, "Load httpfs and allow s3:// paths (needs "
            "pip install '.[s3]').", _bool),
    Setting("s3_access_key_id", "DUCKDB_S3_ACCESS_KEY_ID", "", "S3 access key id (else the AWS credential chain)."),
    Setting("s3_secret_access_key", "DUCKDB_S3_SECRET_ACCESS_KEY", "", "S3 secret access key.", secret=True),
    Setting("s3_session_token", "DUCKDB_S3_SESSION_TOKEN", "", "S3 session token.", secret=True),
    Setting("s3_region", "DUCKDB_S3_REGION", "", "S3 region, e.g. us-east-1."),
    Setting("s3_endpoint", "DUCKDB_S3_ENDPOINT", "", "S3-compatible endpoint host:port (MinIO, R2, ...)."),
    Setting("s3_url_style", "DUCKDB_S3_URL_STYLE", "", "'vhost' or 'path'."),
    Setting("s3_use_ssl", "DUCKDB_S3_USE_SSL", "", "true/false: HTTPS to the endpoint (default true)."),
    Setting("lake_catalog", "FLIGHT_LAKE_CATALOG", "", "Serve a DuckLake instead of the DuckDB file: its catalog, "
            "a PostgreSQL connection string ('postgres:host=db dbname=lake user=flight'; password from PGPASSWORD) "
            "shared by many nodes, or a DuckDB file for one node.", _lake_catalog, secret=True),
    Setting("lake_data_path", "FLIGHT_LAKE_DATA_PATH", "", "Where the lake's Parquet files live: "
            "'s3://bucket/prefix/' (credentials from the DUCKDB_S3_* settings) or a folder (default: lake in the "
            "data folder)."),
    Setting("cluster_secret", "FLIGHT_CLUSTER_SECRET", "", "Key shared by the nodes serving one lake: signs "
            "tickets that any node can redeem (unset: a ticket is served by the node that issued it).",
            secret=True),
    Setting("ticket_ttl", "FLIGHT_TICKET_TTL", 300.0, "Seconds a signed (cluster) ticket stays valid.",
            _non_negative_float),
    Setting("cluster_nodes", "FLIGHT_CLUSTER_NODES", "", "Comma-separated Flight locations of every node over the "
            "lake (grpc://host:port); large plain reads are then split into one ticket per node."),
    Setting("fan_out_min_rows", "FLIGHT_FAN_OUT_MIN_ROWS", 1_000_000, "Rows a table scan must have before "
            "it is split across --cluster-nodes.", _positive_int),
    Setting("log_sql", "FLIGHT_LOG_SQL", True, "Include SQL text in statement log records.", _bool),
    Setting("log_level", "FLIGHT_LOG_LEVEL", "info", "debug, info, warning or error.", _log_level),
)



@dataclass(frozen=True)
class Config:
    """The effective configuration; validated, never read from the environment again."""

    host: str = "127.0.0.1"
    port: int = 31337
    data_dir: str = "data"
    database: str = ""
    read_only: bool = False
    memory_limit: str = ""
    max_memory_percentage: float = 80.0
    worker_threads: int = 0
    max_temp_directory_size: str = ""
    pool_size: int = 64
    session_idle_timeout: float = 900.0
    max_prepared_statements: int = 256
    max_concurrent_statements: int = 32
    max_queued_statements: int = 128
    queue_timeout: float = 30.0
    statement_timeout: float = 0.0
    max_sessions_per_user: int = 0
    max_statements_per_user: int = 0
    stall_timeout: float = 10.0
    idle_in_transaction_timeout: float = 60.0
    max_parked_results: int = 16
    max_result_memory: str = "64MB"
    max_spill_per_user: str = ""
    max_spill_per_session: str = ""
    breaker_failure_threshold: int = 5
    breaker_window: float = 60.0
    breaker_reset_timeout: float = 30.0
    http_port: int = 8080
    shutdown_grace_period: float = 30.0
    backup_dir: str = ""
    auth: str = "password"
    users_file: str = ""
    user: str = ""
    password: str = ""
    user_role: str = "admin"
    token_secret: str = ""
    token_ttl: float = 3600.0
    jwt_key: str = ""
    jwt_algorithms: str = "RS256"
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_role_claim: str = "role"
    allow_unauthenticated_network: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    sandbox: bool = True
    allowed_directories: str = ""
    extensions: str = ""
    enable_s3: bool = False
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_session_token: str = ""
    s3_region: str = ""
    s3_endpoint: str = ""
    s3_url_style: str = ""
    s3_use_ssl: str = ""
    lake_catalog: str = ""
    lake_data_path: str = ""
    cluster_secret: str = ""
    ticket_ttl: float = 300.0
    cluster_nodes: str = ""
    fan_out_min_rows: int = 1_000_000
    log_sql: bool = True
    log_level: str = "info"

    @property
    def database_path(self) -> str:
        if self.database:
            return self.database
        return os.path.join(self.data_dir, "flight.duckdb")

    @property
    def backup_directory(self) -> str:
        return self.backup_dir or os.path.join(self.data_dir, "backups")

    @property
    def temp_directory(self) -> str:
        return os.path.join(self.data_dir, "tmp")

    @property
    def user_session_cap(self) -> int:
        return self.max_sessions_per_user or max(1, self.pool_size // 2)

    @property
    def user_statement_cap(self) -> int:
        return self.max_statements_per_user or max(1, self.max_concurrent_statements // 2)

    @property
    def lake_data_folder(self) -> str:
        return self.lake_data_path or os.path.join(self.data_dir, "lake")

    @property
    def location(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "grpc+tls" if self.tls_cert else "grpc"
        return f"{scheme}://{host}:{self.port}"

    @property
    def users_path(self) -> str:
        return self.users_file or os.path.join(self.data_dir, "users.toml")

    @property
    def allowed_directory_list(self) -> list[str]:
        if self.allowed_directories:
            return [p.strip() for p in self.allowed_directories.split(",") if p.strip()]
        return [os.path.join(self.data_dir, "files")]

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")

    def redacted(self) -> dict[str, Any]:
        secrets = {s.name for s in SETTINGS if s.secret}
        return {k: ("***" if k in secrets and v else v) for k, v in dataclasses.asdict(self).items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file with settings (env: FLIGHT_CONFIG).")
    parser.add_argument("--print-config", action="store_true",
                        help="Print the effective configuration (secrets redacted) and exit.")
    for setting in SETTINGS:
        parser.add_argument(setting.flag, dest=setting.name, default=None, metavar="VALUE",
                            help=f"{setting.help} [env {setting.env}; default {setting.default!r}]")


def load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Merges flag > env > file > default and validates every value."""
    file_values = _read_file(getattr(args, "config", None) or environ.get("FLIGHT_CONFIG"))
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        flag_value = getattr(args, setting.name, None)
        if flag_value is not None:
            raw, source = flag_value, setting.flag
        elif setting.env in environ:
            raw, source = environ[setting.env], setting.env
        elif setting.name in file_values:
            raw, source = file_values[setting.name], f"{setting.name} in the config file"
        else:
            values[setting.name] = setting.default
            continue
        if raw == "" and setting.default in ("", None):
            values[setting.name] = ""
            continue
        try:
            values[setting.name] = setting.parse(str(raw)) if not isinstance(raw, bool) else raw
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return Config(**values)


def _read_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
    data = data.get("server", data)
    known = {s.name for s in SETTINGS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"--config: unknown setting(s) {', '.join(unknown)} in {path}")
    return data


def settings_table(settings: Sequence[Setting] = SETTINGS) -> str:
    """The settings as the README's markdown table; tests/test_settings_table.py checks the README holds it.
    Regenerate: python -c 'from flight_server.config import settings_table; print(settings_table())'"""
    lines = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for s in settings:
        lines.append(f"| `{s.flag}` | `{s.env}` | {_shown(s.default)} | {s.help} |")
    return "\n".join(lines)


def _shown(default: Any) -> str:
    if default in ("", None):
        return "–"
    return f"`{str(default).lower() if isinstance(default, bool) else default}`"
