"""Wires configuration into the engine and the Flight service."""

from __future__ import annotations

from .config import Config
from .engine import Database, SessionPool
from .engine.database import EngineSettings
from .memory import effective_limit
from .service.server import FlightSqlServer


def build_server(config: Config) -> FlightSqlServer:
    settings = EngineSettings(
        database_path=config.database_path,
        memory_limit=effective_limit(config.memory_limit, config.max_memory_percentage),
        threads=config.worker_threads or None,
        temp_directory=config.temp_directory,
        max_temp_directory_size=config.max_temp_directory_size or None,
        read_only=config.read_only,
    )
    database = Database(settings)
    pool = SessionPool(database.connect, max_sessions=config.pool_size,
                       idle_timeout=config.session_idle_timeout, max_prepared=config.max_prepared_statements)
    pool.start()
    return FlightSqlServer(config, database, pool)
