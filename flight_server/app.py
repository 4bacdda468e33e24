"""Wires configuration into the engine, the auth layer and the Flight service."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

import structlog

from .auth.external_jwt import ExternalJwtVerifier
from .auth.credentials import Authenticator
from .auth.roles import Policy
from .auth.throttle import LoginThrottle
from .auth.tokens import RevokedSessions, TokenSigner
from .auth.users import UserStore, bootstrap_admin
from .config import Config, ConfigError
from .engine import Database, SessionPool
from .engine.database import EngineSettings
from .engine import lake as lakes
from .engine.extensions import ExtensionError
from .engine.spill import SpillSpace
from .memory import effective_limit, parse_size
from .service.cluster_tickets import ClusterTickets
from .service.server import FlightSqlServer

log = structlog.get_logger("flight_server")


def build_server(config: Config) -> FlightSqlServer:
    auth = build_auth(config)
    tls = build_tls(config)
    allowed = None
    if config.sandbox:
        allowed = tuple(config.allowed_directory_list)  # never the backup folder: the server writes backups itself
    lake = build_lake(config)
    tickets = build_cluster_tickets(config) if lake is not None else None
    settings = EngineSettings(
        database_path=":memory:" if lake is not None else config.database_path,
        memory_limit=effective_limit(config.memory_limit, config.max_memory_percentage),
        threads=config.worker_threads or None,
        temp_directory=config.temp_directory,
        max_temp_directory_size=config.max_temp_directory_size or None,
        read_only=config.read_only and lake is None,  # over a lake the lake is attached read-only instead
        allowed_directories=allowed,
        extensions=tuple(name.strip() for name in config.extensions.split(",") if name.strip()),
        s3={key: getattr(config, "s3_" + key) for key in
            ("access_key_id", "secret_access_key", "session_token", "region", "endpoint", "url_style",
             "use_ssl")} if config.enable_s3 else None,
        lake=lake,
    )
    try:
        database = Database(settings)
    except ExtensionError as exc:
        raise ConfigError(f"{'FLIGHT_LAKE_CATALOG' if lake else 'DUCKDB_EXTENSIONS'}: {exc}") from None
    except Exception as exc:
        if lake is None:
            raise
        raise ConfigError(f"FLIGHT_LAKE_CATALOG: cannot attach the lake: {str(exc).splitlines()[0]}") from None
    pool = SessionPool(database.connect, max_sessions=config.pool_size,
                       idle_timeout=config.session_idle_timeout, max_prepared=config.max_prepared_statements,
                       parse=database.parse, max_sessions_per_user=config.user_session_cap,
                       idle_in_transaction_timeout=config.idle_in_transaction_timeout,
                       spill=build_spill(config), max_parked=config.max_parked_results)
    pool.start()
    server = FlightSqlServer(config, database, pool, auth=auth, tls=tls, policy=build_policy(config, database))
    server.cluster_tickets = tickets
    return server


def build_cluster_tickets(config: Config) -> ClusterTickets | None:
    """Signed tickets any node over the lake can serve (--cluster-secret), split across --cluster-nodes."""
    if not config.cluster_secret:
        if config.cluster_nodes:
            raise ConfigError("FLIGHT_CLUSTER_NODES: fan-out needs signed tickets: set --cluster-secret too")
        return None
    nodes = tuple(node.strip() for node in config.cluster_nodes.split(",") if node.strip())
    try:
        return ClusterTickets(config.cluster_secret.encode(), config.ticket_ttl, nodes, config.fan_out_min_rows)
    except Exception as exc:  # noqa: BLE001 - pyarrow refused a location
        raise ConfigError(f"FLIGHT_CLUSTER_NODES: not Flight locations (grpc://host:port): {exc}") from None


def build_lake(config: Config) -> lakes.LakeSettings | None:
    """The DuckLake to serve (--lake-catalog), or None for the embedded database file."""
    if not config.lake_catalog:
        if config.cluster_secret or config.cluster_nodes:
            raise ConfigError("FLIGHT_CLUSTER_SECRET: cluster tickets need a lake (--lake-catalog)")
        return None
    if config.lake_catalog.startswith(("postgresql://", "postgres://")) and urlsplit(config.lake_catalog).password:
        # SQL can read an attached database's connection string (duckdb_databases()).
        raise ConfigError("FLIGHT_LAKE_CATALOG: put the catalog's password in PGPASSWORD (or ~/.pgpass), not in "
                          "the connection string")
    s3 = {key: getattr(config, "s3_" + key) for key in
          ("access_key_id", "secret_access_key", "session_token", "region", "endpoint", "url_style", "use_ssl")}
    return lakes.LakeSettings(config.lake_catalog, config.lake_data_folder, config.read_only, s3)


def build_spill(config: Config) -> SpillSpace:
    """Spill files of unread results: in <temp folder>/results, counted with DuckDB's own spill files against
    --max-temp-directory-size (default, as DuckDB's: 90% of the disk space free at start)."""
    if config.max_temp_directory_size:
        limit = parse_size(config.max_temp_directory_size)
    else:
        os.makedirs(config.temp_directory, exist_ok=True)
        limit = int(shutil.disk_usage(config.temp_directory).free * 0.9)
    per_user = parse_size(config.max_spill_per_user) if config.max_spill_per_user else limit // 2
    per_session = parse_size(config.max_spill_per_session) if config.max_spill_per_session else limit // 4
    return SpillSpace(os.path.join(config.temp_directory, "results"), limit, per_user, per_session,
                      parse_size(config.max_result_memory), duckdb_directory=config.temp_directory)


def build_policy(config: Config, database: Database) -> Policy:
    """What no SQL may name (the server's own files, any role) and what the role decisions need to know."""
    protected = []
    if config.database_path != ":memory:":
        db = os.path.realpath(config.database_path)
        protected += [db] + [db + suffix for suffix in (".wal", ".wal.recovery", ".wal.checkpoint", ".tmp")]
    data = os.path.realpath(config.data_dir)
    protected += [os.path.realpath(config.temp_directory), os.path.realpath(config.users_path),
                  os.path.realpath(config.backup_directory), os.path.join(data, "initial-admin-password"),
                  os.path.join(data, "revoked-tokens.json"), os.path.join(data, "backup.key")]
    lake = database.settings.lake
    if lake is not None:
        protected += lakes.protected(lake)  # the lake's files: DuckDB reaches them, users' SQL names tables
    return Policy(protected_paths=tuple(dict.fromkeys(protected)), table_functions=database.table_functions,
                  parse=database.parse,
                  protected_urls=(lake.data_location,) if lake is not None and lake.remote_data else (),
                  admin_names=(lakes.METADATA_PREFIX,) if lake is not None else ())


def build_auth(config: Config) -> Authenticator | None:
    if config.auth == "none":
        if not config.is_loopback and not config.allow_unauthenticated_network:
            raise ConfigError(f"FLIGHT_AUTH: refusing to serve {config.host} without authentication; "
                              "configure users or set FLIGHT_ALLOW_UNAUTHENTICATED_NETWORK=true")
        log.warning("authentication is off", host=config.host)
        return None
    users_file = config.users_path
    exists = os.path.exists(users_file)
    if not exists and not config.user:
        password = bootstrap_admin(users_file)
        secret_file = os.path.join(os.path.dirname(os.path.abspath(users_file)), "initial-admin-password")
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        log.warning("created user 'admin'; its password is in the file named here (readable by this account "
                    "only). Add users to the users file and delete that file.", password_file=secret_file,
                    users_file=users_file)
        exists = True
    try:
        users = UserStore.load(users_file if exists else None, config.user or None, config.password or None,
                               config.user_role)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"FLIGHT_USERS_FILE: {exc}") from None
    if not len(users):
        raise ConfigError(f"FLIGHT_USERS_FILE: no users in {users_file}")
    # Tokens are checked against the users (a removed user, a changed role or password ends them) and against
    # the sessions closed by CloseSession, kept in the data folder across restarts.
    revoked = RevokedSessions(os.path.join(config.data_dir, "revoked-tokens.json"))
    signer = TokenSigner(config.token_secret.encode() if config.token_secret else None, config.token_ttl, users,
                         revoked)
    return Authenticator(users, signer, LoginThrottle(), build_external_jwt(config))


def build_external_jwt(config: Config) -> ExternalJwtVerifier | None:
    if not config.jwt_key:
        return None
    try:
        import jwt  # noqa: F401
    except ImportError:
        raise ConfigError("FLIGHT_JWT_KEY: external JWTs need PyJWT: pip install '.[sso]'") from None
    key = config.jwt_key
    if os.path.isfile(key):
        with open(key) as handle:
            key = handle.read()
    algorithms = tuple(a.strip() for a in config.jwt_algorithms.split(",") if a.strip())
    if not algorithms or any(a.lower() == "none" for a in algorithms):
        raise ConfigError("FLIGHT_JWT_ALGORITHMS: name at least one real algorithm (e.g. RS256)")
    return ExternalJwtVerifier(key, algorithms, config.jwt_issuer or None, config.jwt_audience or None,
                               role_claim=config.jwt_role_claim)


def build_tls(config: Config) -> dict | None:
    if not config.tls_cert:
        if config.tls_client_ca:
            raise ConfigError("FLIGHT_TLS_CLIENT_CA: mutual TLS needs --tls-cert and --tls-key too")
        return None
    if not config.tls_key:
        raise ConfigError("FLIGHT_TLS_KEY: --tls-cert needs --tls-key")
    try:
        with open(config.tls_cert, "rb") as cert, open(config.tls_key, "rb") as key:
            options: dict = {"tls_certificates": [(cert.read(), key.read())]}
        if config.tls_client_ca:
            with open(config.tls_client_ca, "rb") as ca:
                options["root_certificates"] = ca.read()
            options["verify_client"] = True
    except OSError as exc:
        raise ConfigError(f"FLIGHT_TLS_CERT: cannot read {exc.filename}: {exc.strerror}") from None
    return options
