"""PostgreSQL 15 for the local platform: data folders, seed data, start-up and SQL.

PostgreSQL refuses to run as root, so when the harness is root every PostgreSQL program runs
as the `postgres` user through `setpriv`. A seeded primary data folder is kept in a cache keyed
by seed and row count, and each run starts from a copy of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import structlog

from harness.errors import TargetStartError
from harness.platforms.processes import LOOPBACK, ProcessRecord, free_port, spawn, wait_until

log = structlog.get_logger(__name__)

PG_BIN = Path(os.environ.get("HARNESS_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
# Bump when the seed schema or data changes, so old caches are not reused.
SEED_VERSION = 2

SETTINGS = """
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 64MB
wal_level = replica
max_wal_senders = 8
hot_standby = on
hot_standby_feedback = on
fsync = off
synchronous_commit = off
full_page_writes = off
checkpoint_timeout = 30min
max_wal_size = 1GB
log_destination = 'stderr'
logging_collector = off
log_min_messages = warning
track_io_timing = on
max_parallel_workers_per_gather = 0
"""

INDEX_SQL = "CREATE INDEX IF NOT EXISTS orders_customer_idx ON orders (customer_id)"

HBA = """
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def _as_postgres(argv: list[str]) -> list[str]:
    # setpriv executes the program in place (runuser would stay as its parent), so the
    # recorded pid is the server itself and signals reach it.
    if os.geteuid() == 0:
        return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups", *argv]
    return argv


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, PG_USER, PG_USER)


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise TargetStartError(f"postgres: {what} failed: {' '.join(detail)}")


def data_root(state_dir: Path) -> Path:
    """Return the folder for data folders: under the state folder when the postgres user can
    reach it, else a folder of its own under /var/tmp.

    A state folder inside a 0700 home, or inside pytest's 0700 temporary folder, is out of
    that user's reach.
    """
    inside = state_dir / "pg"
    if os.geteuid() != 0:
        return inside
    reachable = subprocess.run(_as_postgres(["test", "-x", str(state_dir)]), timeout=30)
    if reachable.returncode == 0:
        return inside
    digest = hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()[:12]
    outside = Path("/var/tmp") / f"harness-pg-{digest}"
    outside.mkdir(mode=0o755, exist_ok=True)
    os.chmod(outside, 0o755)
    return outside


def dsn(port: int, database: str = "postgres") -> str:
    """Return a libpq connection string for a local instance."""
    return f"host={LOOPBACK} port={port} user={PG_USER} dbname={database} connect_timeout=5"


def execute(port: int, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
    """Run one statement on a local instance and return its rows (none for commands)."""
    with psycopg.connect(dsn(port, database), autocommit=True) as conn:
        cursor = conn.execute(statement.encode())
        if cursor.description is None:
            return []
        return [tuple(row) for row in cursor.fetchall()]


def _initdb(data: Path) -> None:
    data.parent.mkdir(parents=True, exist_ok=True)
    _chown(data.parent)
    _run([str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
          "--no-sync", "--no-instructions"], "initdb")  # fmt: skip
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(SETTINGS)
    (data / "pg_hba.conf").write_text(HBA)


def _seed_sql(seed: int, rows: int) -> str:
    # setseed takes a value in [-1, 1]; the same seed gives the same random() sequence.
    return f"""
    SELECT setseed({(seed % 1000) / 1000.0});
    CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL,
                           updated_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO products SELECT i, 'product-' || i, 100 + (random() * 9900)::int
      FROM generate_series(1, 10000) AS i;
    CREATE TABLE accounts (id int PRIMARY KEY, version bigint NOT NULL DEFAULT 0,
                           balance_cents bigint NOT NULL);
    INSERT INTO accounts SELECT i, 0, (random() * 100000)::int FROM generate_series(1, 10000) i;
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL,
                         tenant_id int NOT NULL, amount_cents int NOT NULL,
                         note text NOT NULL);
    INSERT INTO orders (customer_id, tenant_id, amount_cents, note)
      SELECT (random() * 99999)::int + 1, (i % 8) + 1, (random() * 50000)::int,
             md5(i::text)
      FROM generate_series(1, {rows}) AS i;
    """


def cached_primary(cache_dir: Path, seed: int, rows: int, log_dir: Path) -> Path:
    """Return a seeded primary data folder for this seed and size, building it once."""
    cached = cache_dir / f"v{SEED_VERSION}-seed{seed}-rows{rows}"
    if (cached / "PG_VERSION").exists():
        return cached
    building = cached.with_name(cached.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    _initdb(building)
    port = free_port()
    record = start(building, port, "postgres-seed", log_dir / "postgres-seed.log")
    try:
        log.info("postgres.seeding", rows=rows, seed=seed)
        execute(port, _seed_sql(seed, rows))
        execute(port, "VACUUM ANALYZE")
    finally:
        stop_clean(building)
        if record.pid:
            os.waitpid(record.pid, 0)
    os.rename(building, cached)
    shutil.rmtree(building.parent / f"{building.name}.sock", ignore_errors=True)
    return cached


def copy_data(source: Path, target: Path) -> None:
    """Copy a data folder, keeping its owner and modes."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    _chown(target.parent)
    subprocess.run(["cp", "-a", str(source), str(target)], check=True, timeout=300)


def basebackup(target: Path, primary_port: int, log_dir: Path) -> None:
    """Make a streaming replica's data folder from the primary, with standby settings (-R)."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    _chown(target.parent)
    _run([str(PG_BIN / "pg_basebackup"), "-h", LOOPBACK, "-p", str(primary_port), "-U", PG_USER,
          "-D", str(target), "-R", "-X", "stream", "--no-sync", "-c", "fast"],
         "pg_basebackup")  # fmt: skip


def point_replica(data: Path, primary_port: int) -> None:
    """Make a replica stream from the given port (the replication link's listen port)."""
    conf = data / "postgresql.auto.conf"
    lines = [line for line in conf.read_text().splitlines() if "primary_conninfo" not in line]
    lines.append(f"primary_conninfo = 'host={LOOPBACK} port={primary_port} user={PG_USER} "
                 "application_name=replica'")  # fmt: skip
    conf.write_text("\n".join(lines) + "\n")


def start(data: Path, port: int, name: str, log_path: Path) -> ProcessRecord:
    """Start a PostgreSQL server on 127.0.0.1 and wait until it accepts connections."""
    sockets = data.parent / f"{data.name}.sock"
    sockets.mkdir(parents=True, exist_ok=True)
    _chown(sockets)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = _as_postgres([str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
                         "-k", str(sockets), "-h", LOOPBACK])  # fmt: skip
    service = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
    record = spawn(service, name, argv, log_path, port=port)

    def accepts() -> bool:
        try:
            execute(port, "SELECT 1")
        except psycopg.Error:
            return False
        return True

    wait_until(record, accepts, 60.0, "accepting connections")
    return record


def stop_clean(data: Path) -> None:
    """Stop the server of a data folder with a fast shutdown, leaving it consistent."""
    _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], "pg_ctl stop")
