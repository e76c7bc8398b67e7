#!/usr/bin/env python3
"""Whole-system benchmark: Almagest vs PostgreSQL 15 + q3c, PostgreSQL 15 + pgsphere, DuckDB.

Every system loads the SAME generated catalog (one Parquet file, plus a CSV converted
from it for PostgreSQL's COPY) and answers the SAME cones. Correctness comes first: the
row count of every cone is checked against an exact reference computed here with numpy
(haversine in float64), and mismatches are reported loudly.

Run `bench/setup.sh` once, then e.g.

    bench/.venv/bin/python bench/run.py --rows 1000000
    bench/.venv/bin/python bench/run.py --systems q3c,duckdb --rows 200000 --out /tmp/b.md

See bench/README.md.
"""
from __future__ import annotations

import argparse
import atexit
import concurrent.futures as cf
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import xmatch as xm

REPO = Path(__file__).resolve().parent.parent
T0 = time.monotonic()
EXPECTED_COLUMNS = ["source_id", "ra", "dec", "parallax", "pmra", "pmdec",
                    "phot_g_mean_mag", "bp_rp"]
AGG_WHERE = "parallax > 1"
ALL_SYSTEMS = ["almagest", "q3c", "pgsphere", "duckdb"]
REPORT_TITLE = "# Benchmarks: Almagest vs PostgreSQL + q3c, PostgreSQL + pgsphere, DuckDB"
LABELS = {
    "almagest": "Almagest",
    "q3c": "PostgreSQL 15 + q3c",
    "pgsphere": "PostgreSQL 15 + pgsphere",
    "duckdb": "DuckDB",
}


# ----------------------------------------------------------------------------- utilities

def log(msg: str) -> None:
    el = time.monotonic() - T0
    print(f"[{int(el // 60):3d}m{el % 60:05.2f}s] {msg}", file=sys.stderr, flush=True)


def loud(msg: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


class Step:
    """`with Step("name"):` logs start, end and elapsed seconds; .seconds afterwards."""

    def __init__(self, name: str):
        self.name = name
        self.seconds = float("nan")

    def __enter__(self):
        log(f"-> {self.name}")
        self._t = time.perf_counter()
        return self

    def __exit__(self, et, ev, tb):
        self.seconds = time.perf_counter() - self._t
        log(f"<- {self.name}: {self.seconds:.2f} s" + ("" if et is None else f" (FAILED: {ev})"))
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def du(path: Path) -> int:
    total = 0
    if path.is_file():
        return path.stat().st_size
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def human_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def lit(x: float) -> str:
    """A float as an exact SQL literal (repr round-trips)."""
    return repr(float(x))


def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        info["os"] = platform.platform()
    return info


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), p))


# ----------------------------------------------------------------------------- geometry

def random_centres(n: int, seed: int) -> np.ndarray:
    """n points uniform on the sphere, (ra, dec) in degrees."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return np.stack([ra, dec], axis=1)


def haversine_deg(ra1, dec1, ra2, dec2):
    """Angular distance in radians; inputs in degrees (numpy arrays or floats)."""
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.minimum(1.0, a)))


class Reference:
    """Exact cone counts with numpy (dec-sorted arrays + band search)."""

    def __init__(self, parquet: Path):
        t = pq.read_table(parquet, columns=["ra", "dec", "parallax", "phot_g_mean_mag"])
        ra = t.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
        dec = t.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
        ok = ~(np.isnan(ra) | np.isnan(dec))
        self.null_positions = int((~ok).sum())
        order = np.argsort(dec[ok], kind="stable")
        self.dec = dec[ok][order]
        self.ra = ra[ok][order]
        par = t.column("parallax")
        g = t.column("phot_g_mean_mag")
        par_np = par.to_numpy(zero_copy_only=False).astype(np.float64)
        g_np = g.to_numpy(zero_copy_only=False).astype(np.float64)
        par_valid = ~np.isnan(par_np) & np.asarray(par.is_valid())
        sel = par_valid & (np.where(par_valid, par_np, 0.0) > 1.0)
        self.agg_count = int(sel.sum())
        gsel = g_np[sel & np.asarray(g.is_valid())]
        self.agg_avg = float(gsel.mean()) if len(gsel) else None
        self.rows = t.num_rows

    def cone_count(self, ra0: float, dec0: float, r: float) -> int:
        lo = np.searchsorted(self.dec, dec0 - r - 1e-9, side="left")
        hi = np.searchsorted(self.dec, dec0 + r + 1e-9, side="right")
        if hi <= lo:
            return 0
        d = haversine_deg(ra0, dec0, self.ra[lo:hi], self.dec[lo:hi])
        return int((d <= math.radians(r)).sum())


# ----------------------------------------------------------------------------- data

def python_gen(rows: int, seed: int, out: Path) -> None:
    """Stand-in generator (only used when no almagest binary exists, or --gen python).

    Same columns as `almagest gen`: positions uniform on the sphere, Gaia-ish photometry,
    with NULLs in parallax/pm/bp_rp. Written in row groups to bound memory.
    """
    rng = np.random.default_rng(seed)
    schema = pa.schema([(c, pa.int64() if c == "source_id" else pa.float64())
                        for c in EXPECTED_COLUMNS])
    chunk = 1_000_000
    with pq.ParquetWriter(out, schema) as w:
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            ids = (np.arange(done, done + n, dtype=np.int64) * 1024
                   + rng.integers(0, 1024, n, dtype=np.int64))
            ra = rng.uniform(0.0, 360.0, n)
            dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
            g = np.clip(21.0 - rng.exponential(2.0, n), 3.0, 21.0)
            parallax = rng.normal(0.5, 1.5, n)
            pmra = rng.normal(-2.0, 6.0, n)
            pmdec = rng.normal(-3.0, 6.0, n)
            bp_rp = rng.normal(1.0, 0.5, n)

            def with_nulls(a, frac):
                mask = rng.random(n) < frac
                return pa.array(a, mask=mask)

            batch = pa.record_batch([
                pa.array(ids), pa.array(ra), pa.array(dec),
                with_nulls(parallax, 0.2), with_nulls(pmra, 0.2), with_nulls(pmdec, 0.2),
                with_nulls(g, 0.01), with_nulls(bp_rp, 0.1),
            ], schema=schema)
            w.write_batch(batch)
            done += n


def parquet_to_csv(parquet: Path, csv: Path) -> None:
    pf = pq.ParquetFile(parquet)
    tmp = csv.with_suffix(".csv.tmp")
    with pacsv.CSVWriter(tmp, pf.schema_arrow) as w:
        for batch in pf.iter_batches(batch_size=500_000):
            w.write_batch(batch)
    tmp.replace(csv)


def check_schema(parquet: Path) -> pa.Schema:
    schema = pq.read_schema(parquet)
    missing = [c for c in EXPECTED_COLUMNS if c not in schema.names]
    if missing:
        raise SystemExit(f"generated catalog {parquet} lacks columns {missing}; has {schema.names}")
    return schema


def pg_type(t: pa.DataType) -> str:
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_floating(t):
        return "real"
    if pa.types.is_boolean(t):
        return "boolean"
    return "text"


# ----------------------------------------------------------------------------- almagest binary

def find_almagest(explicit: str | None) -> Path | None:
    cand = explicit or os.environ.get("ALMAGEST_BIN")
    if cand:
        p = Path(cand)
        return p if p.is_file() and os.access(p, os.X_OK) else None
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/root/.cache/almagest-target"))
    for sub in ("release", "debug"):
        p = target / sub / "almagest"
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def cmd_help(binary: Path, *sub: str) -> str:
    try:
        r = subprocess.run([str(binary), *sub, "--help"], capture_output=True, text=True,
                           timeout=30)
        return r.stdout + r.stderr
    except Exception as e:  # noqa: BLE001
        return f"<{e}>"


# ----------------------------------------------------------------------------- systems

class System:
    key = "?"
    label = "?"

    def __init__(self, ctx: "Ctx"):
        self.ctx = ctx
        self.load_breakdown: dict[str, float] = {}
        self.notes: list[str] = []

    # to override
    def start(self) -> None: ...
    def load(self) -> None: ...
    def connect(self): raise NotImplementedError
    def cone_sql(self, ra: float, dec: float, r: float) -> str: raise NotImplementedError
    def agg_sql(self) -> str: raise NotImplementedError
    def count_sql(self) -> str: raise NotImplementedError
    def size_bytes(self) -> int | None: return None
    def version(self) -> str: return ""
    def stop(self) -> None: ...

    def query(self, conn, sql: str) -> list:
        cur = conn.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        cur.close()
        return rows

    def close(self, conn) -> None:
        conn.close()

    # cross-match: one run = send the targets, join within r_deg, fetch every pair
    def xmatch_once(self, tg: "xm.Targets", r_deg: float, timeout: float
                    ) -> tuple[list, dict]:
        raise NotImplementedError

    def xmatch_plan(self, tg: "xm.Targets", r_deg: float) -> str | None:
        return None

    def xmatch_after_timeout(self) -> None: ...


class XmTimeout(Exception):
    pass


class PgCluster:
    """A throwaway PostgreSQL 15 cluster under the work dir, on a free port."""

    def __init__(self, base: Path, bindir: Path):
        self.base = base
        self.bindir = bindir
        self.datadir = base / "pgdata"
        self.sockdir = base / "pgsock"
        self.port = free_port()
        self.running = False
        self.as_postgres = os.geteuid() == 0

    def _run(self, args: list[str], **kw):
        if self.as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=True, capture_output=True, text=True, **kw)

    def start(self) -> None:
        if self.running:
            return
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.base.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
        self._run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust",
                   "-U", "postgres", "-E", "UTF8", "--locale=C"])
        ram = machine_info().get("ram_bytes", 8 << 30)
        shared = min(4 << 30, ram // 4)
        conf = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.sockdir}'",
            "shared_buffers": f"'{shared // (1 << 20)}MB'",
            "effective_cache_size": f"'{int(ram * 0.6) // (1 << 20)}MB'",
            "work_mem": "'64MB'",
            "maintenance_work_mem": "'1GB'",
            "max_connections": 50,
            "max_parallel_workers_per_gather": 2,
            "max_parallel_maintenance_workers": 2,
            # a throwaway benchmark cluster: durability off for the load, like a bulk load
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": 0,
            "max_wal_size": "'8GB'",
            "checkpoint_timeout": "'30min'",
            "jit": "off",
        }
        self.conf = conf
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# bench/run.py\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "120",
                   "-l", str(self.base / "postgres.log"), "start"])
        self.running = True
        log(f"PostgreSQL cluster up on 127.0.0.1:{self.port} ({self.datadir})")

    def stop(self) -> None:
        if not self.running:
            return
        try:
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                       "-w", "stop"], timeout=120)
            log("PostgreSQL cluster stopped")
        except Exception as e:  # noqa: BLE001
            log(f"pg_ctl stop failed: {e}")
        self.running = False

    def connect(self):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               dbname="postgres", autocommit=True)

    def readable_by_server(self, path: Path) -> bool:
        if not self.as_postgres:
            return True
        return subprocess.run(["runuser", "-u", "postgres", "--", "test", "-r", str(path)]
                              ).returncode == 0


class PgSystem(System):
    table = "?"

    def start(self) -> None:
        self.ctx.pg().start()

    def connect(self):
        return self.ctx.pg().connect()

    def version(self) -> str:
        with self.connect() as c:
            v = c.execute("SHOW server_version").fetchone()[0]
            ext = c.execute("SELECT extname || ' ' || extversion FROM pg_extension "
                            "WHERE extname IN ('q3c', 'pg_sphere')").fetchall()
        return f"PostgreSQL {v}" + "".join(f", {e[0]}" for e in ext if self.ext in e[0])

    def columns_ddl(self) -> str:
        return ", ".join(f"{f.name} {pg_type(f.type)}" for f in self.ctx.schema)

    def copy_in(self, conn) -> None:
        cols = ", ".join(self.ctx.schema.names)
        csv = self.ctx.csv
        if self.ctx.pg().readable_by_server(csv):
            conn.execute(f"COPY {self.table} ({cols}) FROM '{csv}' (FORMAT csv, HEADER true)")
        else:
            self.notes.append("COPY FROM STDIN (CSV not readable by the server user)")
            with conn.cursor().copy(
                    f"COPY {self.table} ({cols}) FROM STDIN (FORMAT csv, HEADER true)") as cp:
                with open(csv, "rb") as f:
                    while blk := f.read(1 << 20):
                        cp.write(blk)

    def count_sql(self) -> str:
        return f"SELECT COUNT(*) FROM {self.table}"

    def agg_sql(self) -> str:
        return f"SELECT COUNT(*), AVG(phot_g_mean_mag) FROM {self.table} WHERE {AGG_WHERE}"

    def size_bytes(self) -> int | None:
        with self.connect() as c:
            return c.execute(f"SELECT pg_total_relation_size('{self.table}')").fetchone()[0]

    # the targets table and the join, per extension
    xm_table = "?"

    def xm_ddl(self) -> str: raise NotImplementedError
    def xm_sql(self, r_deg: float) -> str: raise NotImplementedError

    def _xm_load_targets(self, c, tg) -> None:
        with c.transaction():
            c.execute(f"CREATE TABLE {self.xm_table} ({self.xm_ddl()})")
            with c.cursor().copy(f"COPY {self.xm_table} (tid, ra, dec) FROM STDIN") as cp:
                cp.write(tg.copy_text())
        c.execute(f"ANALYZE {self.xm_table}")

    def xmatch_once(self, tg, r_deg, timeout):
        import psycopg
        with self.connect() as c:
            c.execute(f"SET statement_timeout = {max(1, int(timeout * 1000))}")
            c.execute(f"DROP TABLE IF EXISTS {self.xm_table}")
            try:
                t0 = time.perf_counter()
                self._xm_load_targets(c, tg)
                t1 = time.perf_counter()
                rows = c.execute(self.xm_sql(r_deg)).fetchall()
                t2 = time.perf_counter()
            except psycopg.errors.QueryCanceled as e:
                raise XmTimeout(str(e)) from e
            c.execute(f"DROP TABLE IF EXISTS {self.xm_table}")
        return rows, {"total_s": t2 - t0, "query_s": t2 - t1, "targets_s": t1 - t0}

    def xmatch_plan(self, tg, r_deg):
        with self.connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {self.xm_table}")
            self._xm_load_targets(c, tg)
            plan = c.execute("EXPLAIN " + self.xm_sql(r_deg)).fetchall()
            c.execute(f"DROP TABLE IF EXISTS {self.xm_table}")
        return "\n".join(r[0] for r in plan)


class Q3cSystem(PgSystem):
    key = "q3c"
    label = LABELS["q3c"]
    table = "gaia_q3c"
    ext = "q3c"

    def load(self) -> None:
        with self.connect() as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS q3c")
            c.execute(f"DROP TABLE IF EXISTS {self.table}")
            with Step("q3c: CREATE TABLE + COPY") as s:
                # one transaction: with wal_level=minimal the COPY skips WAL
                with c.transaction():
                    c.execute(f"CREATE TABLE {self.table} ({self.columns_ddl()})")
                    self.copy_in(c)
            self.load_breakdown["copy"] = s.seconds
            with Step("q3c: CREATE INDEX (q3c_ang2ipix)") as s:
                c.execute(f"CREATE INDEX {self.table}_ipix ON {self.table} (q3c_ang2ipix(ra, dec))")
            self.load_breakdown["index"] = s.seconds
            with Step("q3c: CLUSTER") as s:
                c.execute(f"CLUSTER {self.table} USING {self.table}_ipix")
            self.load_breakdown["cluster"] = s.seconds
            with Step("q3c: ANALYZE") as s:
                c.execute(f"ANALYZE {self.table}")
            self.load_breakdown["analyze"] = s.seconds

    def cone_sql(self, ra, dec, r):
        return (f"SELECT source_id, ra, dec FROM {self.table} "
                f"WHERE q3c_radial_query(ra, dec, {lit(ra)}, {lit(dec)}, {lit(r)})")

    xm_table = "xm_targets"

    def xm_ddl(self):
        return "tid bigint, ra double precision, dec double precision"

    def xm_sql(self, r_deg):
        # q3c_join(ra1, dec1, ra2, dec2, r): the index on q3c_ang2ipix(ra2, dec2) is used
        return (f"SELECT t.tid, g.source_id FROM {self.xm_table} t JOIN {self.table} g "
                f"ON q3c_join(t.ra, t.dec, g.ra, g.dec, {lit(r_deg)})")


class PgSphereSystem(PgSystem):
    key = "pgsphere"
    label = LABELS["pgsphere"]
    table = "gaia_sph"
    ext = "pg_sphere"

    def load(self) -> None:
        with self.connect() as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
            c.execute(f"DROP TABLE IF EXISTS {self.table}")
            with Step("pgsphere: CREATE TABLE + COPY (spoint computed as a stored column)") as s:
                with c.transaction():
                    c.execute(
                        f"CREATE TABLE {self.table} ({self.columns_ddl()}, "
                        f"pos spoint GENERATED ALWAYS AS (spoint(radians(ra), radians(dec))) STORED)")
                    self.copy_in(c)
            self.load_breakdown["copy"] = s.seconds
            with Step("pgsphere: CREATE INDEX USING gist(pos)") as s:
                c.execute(f"CREATE INDEX {self.table}_pos ON {self.table} USING gist (pos)")
            self.load_breakdown["index"] = s.seconds
            with Step("pgsphere: CLUSTER") as s:
                c.execute(f"CLUSTER {self.table} USING {self.table}_pos")
            self.load_breakdown["cluster"] = s.seconds
            with Step("pgsphere: ANALYZE") as s:
                c.execute(f"ANALYZE {self.table}")
            self.load_breakdown["analyze"] = s.seconds

    def cone_sql(self, ra, dec, r):
        return (f"SELECT source_id, ra, dec FROM {self.table} WHERE pos @ "
                f"scircle(spoint(radians({lit(ra)}), radians({lit(dec)})), radians({lit(r)}))")

    xm_table = "xm_targets_sph"

    def xm_ddl(self):
        return ("tid bigint, ra double precision, dec double precision, "
                "pos spoint GENERATED ALWAYS AS (spoint(radians(ra), radians(dec))) STORED")

    def xm_sql(self, r_deg):
        return (f"SELECT t.tid, g.source_id FROM {self.xm_table} t JOIN {self.table} g "
                f"ON g.pos @ scircle(t.pos, radians({lit(r_deg)}))")


class DuckDbSystem(System):
    key = "duckdb"
    label = LABELS["duckdb"]

    def start(self) -> None:
        import duckdb
        self.path = self.ctx.workdir / "bench.duckdb"
        for p in (self.path, self.path.with_suffix(".duckdb.wal")):
            if p.exists():
                p.unlink()
        self.db = duckdb.connect(str(self.path))
        self._lock = threading.Lock()

    def load(self) -> None:
        with Step("duckdb: CREATE TABLE AS SELECT * FROM read_parquet(...) ORDER BY dec") as s:
            self.db.execute(
                f"CREATE TABLE gaia AS SELECT * FROM read_parquet('{self.ctx.parquet}') ORDER BY dec")
            self.db.execute("CHECKPOINT")
        self.load_breakdown["create+sort+checkpoint"] = s.seconds
        self.notes.append("table sorted by dec at load so that zone maps prune the dec band "
                          "(DuckDB's analogue of CLUSTER); no spatial index")

    def connect(self):
        with self._lock:
            return self.db.cursor()

    def query(self, conn, sql):
        return conn.execute(sql).fetchall()

    def version(self) -> str:
        import duckdb
        return f"DuckDB {duckdb.__version__}"

    def cone_sql(self, ra, dec, r):
        eps = 1e-9
        dlo, dhi = dec - r - eps, dec + r + eps
        conds = [f"dec BETWEEN {lit(dlo)} AND {lit(dhi)}"]
        if dhi < 90.0 and dlo > -90.0:
            # exact half-width in RA of the cone's bounding box
            s = math.sin(math.radians(r)) / math.cos(math.radians(dec))
            if s < 1.0:
                half = math.degrees(math.asin(s)) + eps
                lo, hi = ra - half, ra + half
                if lo < 0.0:
                    conds.append(f"(ra >= {lit(lo + 360.0)} OR ra <= {lit(hi)})")
                elif hi >= 360.0:
                    conds.append(f"(ra >= {lit(lo)} OR ra <= {lit(hi - 360.0)})")
                else:
                    conds.append(f"ra BETWEEN {lit(lo)} AND {lit(hi)}")
        d0 = math.radians(dec)
        hav = (f"2 * asin(sqrt(least(1.0, pow(sin((radians(dec) - {lit(d0)}) / 2), 2) + "
               f"cos(radians(dec)) * {lit(math.cos(d0))} * "
               f"pow(sin((radians(ra) - {lit(math.radians(ra))}) / 2), 2))))")
        conds.append(f"{hav} <= {lit(math.radians(r))}")
        return "SELECT source_id, ra, dec FROM gaia WHERE " + " AND ".join(conds)

    def agg_sql(self):
        return f"SELECT COUNT(*), AVG(phot_g_mean_mag) FROM gaia WHERE {AGG_WHERE}"

    def count_sql(self):
        return "SELECT COUNT(*) FROM gaia"

    def size_bytes(self):
        return du(self.path)

    @staticmethod
    def xm_sql(r_deg: float) -> str:
        # a dec band (the table is sorted by dec), then the exact haversine test
        band = r_deg + 1e-9
        hav = ("2 * asin(sqrt(least(1.0, pow(sin((radians(g.dec) - radians(t.dec)) / 2), 2) + "
               "cos(radians(g.dec)) * cos(radians(t.dec)) * "
               "pow(sin((radians(g.ra) - radians(t.ra)) / 2), 2))))")
        return (f"SELECT t.tid, g.source_id FROM xm_targets t JOIN gaia g "
                f"ON g.dec BETWEEN t.dec - {lit(band)} AND t.dec + {lit(band)} "
                f"AND {hav} <= {lit(math.radians(r_deg))}")

    def xmatch_once(self, tg, r_deg, timeout):
        import duckdb
        cur = self.connect()
        arrow_targets = tg.arrow()
        timer = threading.Timer(timeout, cur.interrupt)
        try:
            cur.register("xm_targets_arrow", arrow_targets)
            timer.start()
            t0 = time.perf_counter()
            cur.execute("CREATE OR REPLACE TEMP TABLE xm_targets AS "
                        "SELECT * FROM xm_targets_arrow")
            t1 = time.perf_counter()
            rows = cur.execute(self.xm_sql(r_deg)).fetchall()
            t2 = time.perf_counter()
        except duckdb.InterruptException as e:
            raise XmTimeout(str(e)) from e
        finally:
            timer.cancel()
            cur.close()
        return rows, {"total_s": t2 - t0, "query_s": t2 - t1, "targets_s": t1 - t0}

    def xmatch_plan(self, tg, r_deg):
        cur = self.connect()
        try:
            cur.register("xm_targets_arrow", tg.arrow())
            cur.execute("CREATE OR REPLACE TEMP TABLE xm_targets AS SELECT * FROM xm_targets_arrow")
            rows = cur.execute("EXPLAIN " + self.xm_sql(r_deg)).fetchall()
            return "\n".join(str(r[-1]) for r in rows)
        finally:
            cur.close()

    def stop(self):
        try:
            self.db.close()
        except Exception:  # noqa: BLE001
            pass


class AlmagestSystem(System):
    key = "almagest"
    label = LABELS["almagest"]
    table = "bench.gaia"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.proc: subprocess.Popen | None = None
        self.bin = ctx.almagest_bin
        if self.bin is None:
            raise RuntimeError("no almagest binary (set ALMAGEST_BIN or build "
                               "$CARGO_TARGET_DIR/{release,debug}/almagest)")

    def start(self) -> None:
        ctx = self.ctx
        self.datadir = ctx.workdir / "almagest-data"
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(parents=True)
        self.pg_port, self.http_port, self.grpc_port = free_port(), free_port(), free_port()
        helptext = cmd_help(self.bin, "standalone")
        ctx.results.setdefault("almagest_help", {})["standalone"] = helptext
        args = [str(self.bin), "standalone", "--data-dir", str(self.datadir),
                "--workers", str(ctx.args.almagest_workers),
                "--pg-port", str(self.pg_port), "--http-port", str(self.http_port)]
        if "--pg-auth" in helptext:
            # The benchmark connects on loopback without a password.
            args += ["--pg-auth", "trust"]
        if "--grpc-port" in helptext:
            args += ["--grpc-port", str(self.grpc_port)]
        else:
            self.grpc_port = ctx.args.almagest_grpc_port
            self.notes.append(f"standalone has no --grpc-port; assuming coordinator gRPC on "
                              f"{self.grpc_port}")
        args += ctx.args.almagest_standalone_arg
        self.logfile = open(ctx.workdir / "almagest-standalone.log", "w")
        log("starting: " + " ".join(args))
        self.proc = subprocess.Popen(args, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + ctx.args.almagest_start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"almagest standalone exited with {self.proc.returncode}; "
                                   f"log tail:\n{self.log_tail()}")
            try:
                c = self.connect()
                c.close()
                log(f"Almagest pgwire up on 127.0.0.1:{self.pg_port}")
                return
            except Exception as e:  # noqa: BLE001
                last = e
                time.sleep(0.5)
        raise RuntimeError(f"almagest pgwire did not answer within "
                           f"{ctx.args.almagest_start_timeout} s: {last}\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            self.logfile.flush()
            lines = (self.ctx.workdir / "almagest-standalone.log").read_text(
                errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except Exception:  # noqa: BLE001
            return ""

    def load(self) -> None:
        ctx = self.ctx
        ctx.results.setdefault("almagest_help", {})["load"] = cmd_help(self.bin, "load")
        args = [str(self.bin), "load", "--coordinator", f"http://127.0.0.1:{self.grpc_port}",
                "--cluster-secret-file", str(self.datadir / "coordinator" / "cluster-secret"),
                "--table", self.table, "--ra", "ra", "--dec", "dec", "--key", "source_id",
                *ctx.args.almagest_load_arg, str(ctx.parquet)]
        log("running: " + " ".join(args))
        with Step("almagest: load") as s:
            r = subprocess.run(args, capture_output=True, text=True)
            (ctx.workdir / "almagest-load.log").write_text(r.stdout + r.stderr)
            if r.returncode != 0:
                raise RuntimeError(f"almagest load failed ({r.returncode}):\n"
                                   f"{(r.stdout + r.stderr)[-3000:]}")
        self.load_breakdown["load"] = s.seconds

    def connect(self):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.pg_port, user="almagest",
                               dbname="almagest", autocommit=True, connect_timeout=10)

    def version(self) -> str:
        try:
            r = subprocess.run([str(self.bin), "--version"], capture_output=True, text=True,
                               timeout=10)
            return (r.stdout.strip() or r.stderr.strip() or "almagest") + f" ({self.bin})"
        except Exception:  # noqa: BLE001
            return str(self.bin)

    def cone_sql(self, ra, dec, r):
        return (f"SELECT source_id, ra, dec FROM {self.table} WHERE "
                f"scisql_s2PtInCircle(ra, dec, {lit(ra)}, {lit(dec)}, {lit(r)}) = 1")

    def agg_sql(self):
        return f"SELECT COUNT(*), AVG(phot_g_mean_mag) FROM {self.table} WHERE {AGG_WHERE}"

    def count_sql(self):
        return f"SELECT COUNT(*) FROM {self.table}"

    def size_bytes(self):
        return du(self.datadir)

    def xm_adql(self, r_deg: float) -> str:
        return ("SELECT u.tid, g.source_id FROM tap_upload.t AS u JOIN "
                f"{self.table} AS g ON CONTAINS(POINT('ICRS', g.ra, g.dec), "
                f"CIRCLE('ICRS', u.ra, u.dec, {lit(r_deg)})) = 1")

    def xmatch_once(self, tg, r_deg, timeout):
        import urllib.error
        import urllib.request
        body, ctype = xm.multipart(
            {"REQUEST": "doQuery", "LANG": "ADQL", "RESPONSEFORMAT": "csv",
             "MAXREC": str(self.ctx.args.xmatch_maxrec), "UPLOAD": "t,param:t",
             "QUERY": self.xm_adql(r_deg)},
            {"t": ("targets.xml", tg.votable(), "application/x-votable+xml")})
        url = f"http://127.0.0.1:{self.http_port}/tap/sync"
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": ctype})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                # the socket timeout bounds each read; bound the whole request too
                chunks = []
                while blk := resp.read(1 << 16):
                    chunks.append(blk)
                    if time.perf_counter() - t0 > timeout:
                        raise XmTimeout(f"no complete response within {timeout:g} s")
                text = b"".join(chunks).decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"HTTP {e.code} from /tap/sync: "
                               f"{e.read().decode(errors='replace')[:2000]}") from e
        except (TimeoutError, socket.timeout) as e:
            raise XmTimeout(f"no response within {timeout:g} s") from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                raise XmTimeout(f"no response within {timeout:g} s") from e
            raise
        t1 = time.perf_counter()
        pairs = xm.parse_pairs_csv(text)
        if len(pairs) >= self.ctx.args.xmatch_maxrec:
            self.notes.append(f"a cross-match returned MAXREC={self.ctx.args.xmatch_maxrec} "
                              "rows: the result may be truncated")
        return pairs, {"total_s": t1 - t0, "query_s": None,
                       "upload_bytes": len(body)}

    def xmatch_after_timeout(self):
        # the server may still be working on the abandoned request: wait until it is idle
        # so that the next measurement does not share the cores with it
        waited = xm.wait_idle(self.proc.pid, self.ctx.args.xmatch_idle_wait)
        msg = ("still busy after " + f"{self.ctx.args.xmatch_idle_wait:g} s"
               if waited is None else f"idle after {waited:.0f} s")
        log(f"almagest after a cross-match timeout: {msg}")
        return msg

    def stop(self):
        if self.proc is not None:
            self._stop_proc()
            # anything the server left behind in its own process group (it runs in a new
            # session that we created, so this group is ours alone)
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                log("Almagest left processes in its group: sent SIGTERM")
            except (ProcessLookupError, PermissionError):
                pass

    def _stop_proc(self):
        if self.proc and self.proc.poll() is None:
            log("stopping Almagest (SIGINT)")
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log("Almagest did not stop in 30 s after SIGINT; SIGTERM")
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.ctx.results.setdefault("almagest_exit_code", self.proc.returncode)


SYSTEM_CLASSES = {"almagest": AlmagestSystem, "q3c": Q3cSystem, "pgsphere": PgSphereSystem,
                  "duckdb": DuckDbSystem}


# ----------------------------------------------------------------------------- context

class Ctx:
    def __init__(self, args):
        self.args = args
        self.workdir = Path(args.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.parquet = self.workdir / f"catalog-{args.rows}-{args.seed}.parquet"
        self.csv = self.parquet.with_suffix(".csv")
        self.almagest_bin = find_almagest(args.almagest_bin)
        self._pg: PgCluster | None = None
        self.schema: pa.Schema | None = None
        self.results: dict = {}

    def pg(self) -> PgCluster:
        if self._pg is None:
            self._pg = PgCluster(self.workdir / "pg", Path(self.args.pg_bindir))
        return self._pg


# ----------------------------------------------------------------------------- measurements

def measure_latency(sys_: System, conn, cones: np.ndarray, r: float) -> tuple[list, list]:
    times, counts = [], []
    for ra, dec in cones:
        sql = sys_.cone_sql(ra, dec, r)
        t = time.perf_counter()
        rows = sys_.query(conn, sql)
        times.append(time.perf_counter() - t)
        counts.append(len(rows))
    return times, counts


def measure_throughput(sys_: System, cones: np.ndarray, r: float, ref_counts: list[int],
                       seconds: float, clients: int) -> dict:
    stop_at = time.perf_counter() + seconds
    barrier = threading.Barrier(clients)

    def worker(i: int):
        conn = sys_.connect()
        n = bad = err = 0
        lat = []
        j = (i * len(cones)) // clients
        try:
            barrier.wait(timeout=60)
            while time.perf_counter() < stop_at:
                ra, dec = cones[j % len(cones)]
                t = time.perf_counter()
                try:
                    rows = sys_.query(conn, sys_.cone_sql(ra, dec, r))
                except Exception:  # noqa: BLE001
                    err += 1
                    if err > 20:
                        raise
                    continue
                lat.append(time.perf_counter() - t)
                if len(rows) != ref_counts[j % len(cones)]:
                    bad += 1
                n += 1
                j += 1
        finally:
            sys_.close(conn)
        return n, bad, err, lat

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex:
        res = list(ex.map(worker, range(clients)))
    wall = time.perf_counter() - t0
    n = sum(x[0] for x in res)
    lat = [v for x in res for v in x[3]]
    return {"queries": n, "seconds": wall, "qps": n / wall if wall else float("nan"),
            "mismatches": sum(x[1] for x in res), "errors": sum(x[2] for x in res),
            "clients": clients, "p50_ms": pct(lat, 50) * 1e3, "p95_ms": pct(lat, 95) * 1e3}


def plan_nodes(plan: str) -> list[str]:
    """Operator names of a PostgreSQL EXPLAIN text or a DuckDB EXPLAIN box drawing, top
    down, repeats collapsed ('4 x Bitmap Index Scan on t_ipix')."""
    names: list[str] = []
    for ln in plan.splitlines():
        if "(cost=" in ln:
            names.append(ln.split("(cost=")[0].replace("->", "").strip())
        else:
            names += [m.strip() for m in re.findall(r"╭─ ([^─]+?) ─", ln)]
    out: list[list] = []
    for n in names:
        if out and out[-1][0] == n:
            out[-1][1] += 1
        else:
            out.append([n, 1])
    return [n if c == 1 else f"{c} x {n}" for n, c in out]


def run_xmatch(key: str, sys_: System, ctx: Ctx, xmd: dict) -> dict:
    """The cross-match on a loaded system: per radius one warm-up, then the median of
    --xmatch-repeats runs; every run's pairs are compared with the reference."""
    args = ctx.args
    tg: xm.Targets = xmd["targets"]
    out: dict = {"radii": {}, "notes": []}
    try:
        out["plan"] = sys_.xmatch_plan(tg, args.xmatch_radii[0] / 3600.0)
    except Exception as e:  # noqa: BLE001
        out["plan"] = f"<EXPLAIN failed: {e}>"
    nodes = plan_nodes(out["plan"] or "")
    if nodes:
        out["notes"].append("plan of the join (EXPLAIN, r=" + xm.alabel(args.xmatch_radii[0])
                            + "): " + " > ".join(nodes))
    for r_as in args.xmatch_radii:
        r_deg = r_as / 3600.0
        ref = xmd["reference"][str(r_as)]
        rr: dict = {"status": "ok", "runs": []}
        out["radii"][str(r_as)] = rr
        for i in range(1 + args.xmatch_repeats):
            what = "warm-up" if i == 0 else f"run {i}/{args.xmatch_repeats}"
            try:
                with Step(f"{key}: cross-match {len(tg):,} targets r={r_as:g} arcsec ({what})"):
                    pairs, t = sys_.xmatch_once(tg, r_deg, args.xmatch_timeout)
            except XmTimeout as e:
                rr["status"] = "timeout"
                rr["timeout_run"] = what
                loud(f"{key}: cross-match r={r_as:g} arcsec timed out ({what}, "
                     f"{args.xmatch_timeout:g} s): {e}")
                after = sys_.xmatch_after_timeout()
                if after:
                    rr["after_timeout"] = after
                    out["notes"].append(f"after the timeout at r={xm.alabel(r_as)} ({what}) the "
                                        f"server was {after}")
                break
            except Exception as e:  # noqa: BLE001
                rr["status"] = "error"
                rr["error"] = f"{type(e).__name__}: {e}"
                loud(f"{key}: cross-match r={r_as:g} arcsec failed: {rr['error'][:2000]}")
                break
            pairs = [(int(a), int(b)) for a, b in pairs]
            tol = xm.PGSPHERE_EPSILON_RAD if key == "pgsphere" else 0.0
            cmp_ = xm.compare(pairs, ref["pairs_set"], xmd["catalog"], tg, r_deg, tol)
            t["pairs"] = len(pairs)
            t["correct"] = cmp_["correct"]
            rr["runs"].append(t)
            if "compare" not in rr or not cmp_["correct"]:
                rr["compare"] = cmp_
            log(f"   {t['total_s']:.3f} s" + ("" if t.get("query_s") is None
                                              else f" (query {t['query_s']:.3f} s)")
                + f", {len(pairs):,} pairs (reference {len(ref['pairs_set']):,})"
                + ("" if cmp_["correct"] else
                   f" MISMATCH: {cmp_['missing']} missing, {cmp_['extra']} extra, "
                   f"{cmp_['duplicates']} duplicates"))
            if not cmp_["correct"]:
                loud(f"{key}: cross-match r={r_as:g} arcsec differs from the reference: "
                     f"{cmp_['missing']} missing, {cmp_['extra']} extra, "
                     f"{cmp_['duplicates']} duplicates; first: {cmp_['detail'][:3]}")
        timed = rr["runs"][1:]
        if rr["status"] == "ok" and timed:
            rr["total_median_s"] = statistics.median(x["total_s"] for x in timed)
            q = [x["query_s"] for x in timed if x.get("query_s") is not None]
            rr["query_median_s"] = statistics.median(q) if q else None
            rr["pairs"] = timed[-1]["pairs"]
        elif rr["status"] == "ok":
            rr["status"] = "error"
            rr["error"] = "no timed runs"
    out["notes"] += [n for n in sys_.notes if "cross-match" in n]
    return out


def run_system(key: str, ctx: Ctx, cones: np.ndarray, warm: np.ndarray, ref: dict,
               xmd: dict | None = None) -> dict:
    args = ctx.args
    out: dict = {"label": LABELS[key]}
    sys_ = None
    try:
        sys_ = SYSTEM_CLASSES[key](ctx)
        with Step(f"{key}: start") as s:
            sys_.start()
        out["start_s"] = s.seconds
        with Step(f"{key}: load ({args.rows:,} rows, incl. index build)") as s:
            sys_.load()
        out["load_s"] = s.seconds
        out["load_breakdown"] = sys_.load_breakdown
        out["version"] = sys_.version()
        out["size_bytes"] = sys_.size_bytes()
        conn = sys_.connect()
        try:
            n = sys_.query(conn, sys_.count_sql())[0][0]
            out["count"] = int(n)
            if n != args.rows:
                loud(f"{key}: table holds {n:,} rows, expected {args.rows:,}")
            if args.xmatch_only:
                out["notes"] = sys_.notes
                out["xmatch"] = run_xmatch(key, sys_, ctx, xmd)
                return out
            with Step(f"{key}: warm-up ({len(warm)} cones)"):
                for ra, dec in warm:
                    sys_.query(conn, sys_.cone_sql(ra, dec, args.radii[0]))
            try:
                ex = "EXPLAIN ANALYZE " if key != "almagest" else "EXPLAIN "
                plan = sys_.query(conn, ex + sys_.cone_sql(cones[0][0], cones[0][1], args.radii[0]))
                out["explain_cone"] = "\n".join(str(r[-1]) for r in plan)
                pt = re.search(r"Planning Time: ([0-9.]+) ms", out["explain_cone"])
                et = re.search(r"Execution Time: ([0-9.]+) ms", out["explain_cone"])
                if pt and et:
                    sys_.notes.append(
                        f"EXPLAIN ANALYZE of one r={args.radii[0]:g}° cone: planning "
                        f"{float(pt.group(1)):.2f} ms, execution {float(et.group(1)):.2f} ms")
            except Exception as e:  # noqa: BLE001
                out["explain_cone"] = f"<EXPLAIN failed: {e}>"
                conn.close()
                conn = sys_.connect()
            out["cones"] = {}
            for r in args.radii:
                with Step(f"{key}: cone latency r={r:g} deg x {len(cones)} (one connection)"):
                    times, counts = measure_latency(sys_, conn, cones, r)
                exp = ref["cones"][str(r)]
                mism = [{"i": i, "ra": float(cones[i][0]), "dec": float(cones[i][1]),
                         "got": c, "expected": e}
                        for i, (c, e) in enumerate(zip(counts, exp)) if c != e]
                out["cones"][str(r)] = {
                    "p50_ms": pct(times, 50) * 1e3, "p95_ms": pct(times, 95) * 1e3,
                    "mean_ms": statistics.fmean(times) * 1e3, "rows_total": sum(counts),
                    "counts": counts, "mismatches": mism}
                c = out["cones"][str(r)]
                log(f"   p50 {c['p50_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms, "
                    f"{c['rows_total']:,} rows total, {len(mism)} count mismatches")
                if mism:
                    loud(f"{key}: {len(mism)} of {len(cones)} cones (r={r:g} deg) return a "
                         f"different row count from the reference; first: {mism[:3]}")
            with Step(f"{key}: full-scan aggregate x {args.agg_repeats} (+1 warm-up)"):
                sql = sys_.agg_sql()
                res = sys_.query(conn, sql)
                times = []
                for _ in range(args.agg_repeats):
                    t = time.perf_counter()
                    res = sys_.query(conn, sql)
                    times.append(time.perf_counter() - t)
            cnt, avg = res[0][0], res[0][1]
            avg = None if avg is None else float(avg)
            ok = (int(cnt) == ref["agg_count"] and avg is not None and ref["agg_avg"] is not None
                  and abs(avg - ref["agg_avg"]) <= 1e-9 * max(1.0, abs(ref["agg_avg"])))
            out["agg"] = {"median_s": statistics.median(times), "min_s": min(times),
                          "count": int(cnt), "avg": avg, "correct": ok}
            log(f"   median {out['agg']['median_s'] * 1e3:.1f} ms, count {cnt:,}, avg {avg}")
            if not ok:
                loud(f"{key}: aggregate returned ({cnt}, {avg}); reference "
                     f"({ref['agg_count']}, {ref['agg_avg']})")
        finally:
            sys_.close(conn)
        r0 = args.radii[0]
        with Step(f"{key}: throughput r={r0:g} deg, {args.clients} clients, "
                  f"{args.throughput_seconds:g} s") as s:
            tp = measure_throughput(sys_, cones, r0, ref["cones"][str(r0)],
                                    args.throughput_seconds, args.clients)
        out["throughput"] = tp
        log(f"   {tp['qps']:.1f} queries/s ({tp['queries']} queries, "
            f"{tp['mismatches']} count mismatches, {tp['errors']} errors)")
        if tp["mismatches"]:
            loud(f"{key}: {tp['mismatches']} count mismatches under concurrency")
        out["notes"] = [n for n in sys_.notes if "cross-match" not in n]
        if xmd is not None:
            out["xmatch"] = run_xmatch(key, sys_, ctx, xmd)
    except Exception as e:  # noqa: BLE001
        import traceback
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
        loud(f"{key} FAILED: {out['error']}")
        if sys_ is not None:
            out["notes"] = sys_.notes
    finally:
        if sys_ is not None:
            try:
                sys_.stop()
            except Exception as e:  # noqa: BLE001
                log(f"{key}: stop failed: {e}")
    return out


# ----------------------------------------------------------------------------- report

def rlabel(r: float) -> str:
    """0.2 -> '0.2°', 1/60 -> "1'" (arcmin), for headings."""
    am = r * 60.0
    if r < 1.0 and abs(am - round(am)) < 1e-9 and abs(r * 10 - round(r * 10)) > 1e-9:
        return f"{round(am)}′"
    return f"{r:g}°"


def fmt_ms(v):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def fmt_s(v):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def write_report(path: Path, ctx: Ctx, res: dict) -> None:
    args = ctx.args
    m = res["machine"]
    sysres: dict = res["systems"]
    order = [k for k in ALL_SYSTEMS if k in sysres]
    ok_systems = [k for k in order if "error" not in sysres[k]]
    alm = sysres.get("almagest")
    alm_ok = alm is not None and "error" not in alm
    L = []
    L.append(REPORT_TITLE + "\n")
    L.append(f"Generated by `bench/run.py` on {res['date']} "
             f"(`{shlex.join(res['argv'])}`). All systems ran on the same machine in the same "
             "run, loaded the same catalog file and answered the same cones.\n")
    if not alm_ok:
        why = (("no Almagest binary had been built when it ran" if ctx.almagest_bin is None
                else "it was not selected with --systems") if alm is None else f"it failed: `{alm['error'].splitlines()[0]}`")
        L.append(f"> **Almagest was not measured in this run** ({why}). The figures below are "
                 "for the peer systems only; there are no Almagest numbers or ratios in this "
                 "file.\n")
    if res["gen"] != "almagest":
        L.append("> **The catalog was made by the harness's stand-in generator** "
                 "(`--gen python`, no `almagest gen` binary), not by `almagest gen`. Its columns "
                 "and NULL pattern follow the same schema.\n")

    for n in res.get("notes", []):
        L.append(f"> Note: {n}\n")
    L.append("## Machine\n")
    L.append("| | |\n|---|---|")
    L.append(f"| CPU | {m.get('cpu', '?')} |")
    L.append(f"| cores | {m.get('cores')} |")
    L.append(f"| RAM | {human_bytes(m.get('ram_bytes'))} |")
    L.append(f"| OS | {m.get('os', '?')} (kernel {m.get('kernel')}) |")
    L.append(f"| load average (1/5/15 min) | at start {' '.join(res['loadavg_start'])}, "
             f"at end {' '.join(res['loadavg_end'])} |")
    L.append(f"| client | Python {m.get('python')}, psycopg {res['versions'].get('psycopg')}, "
             f"same machine (clients compete with the servers for the cores) |")
    L.append("")

    d = res["data"]
    L.append("## Data\n")
    L.append(f"- {d['rows']:,} rows, seed {args.seed}, generated by "
             f"`{d['generator']}` in {d['gen_s']:.1f} s; columns "
             f"{', '.join(d['columns'])}.")
    L.append(f"- Parquet {human_bytes(d['parquet_bytes'])}; CSV (for PostgreSQL's COPY, "
             f"converted from the Parquet file by the harness) {human_bytes(d['csv_bytes'])}.")
    L.append(f"- Cones: {args.cones} centres uniform on the sphere (seed {args.seed + 1}), "
             f"radii {', '.join(rlabel(r) for r in args.radii)}; the same centres for "
             f"every system, plus {args.warmup} warm-up cones (not timed).")
    L.append("- Reference row counts: exact haversine test in numpy (float64) over the "
             "Parquet file; mean rows per cone: "
             + ", ".join(f"r={rlabel(r)}: {statistics.fmean(res['reference']['cones'][str(r)]):.2f}"
                         for r in args.radii) + ".")
    L.append("")

    L.append("## Systems\n")
    L.append("| system | version | on-disk size | how |")
    L.append("|---|---|---|---|")
    how = {
        "almagest": f"`almagest standalone --workers {args.almagest_workers}`, `almagest load`; "
                    "`scisql_s2PtInCircle(ra, dec, ra0, dec0, r) = 1`",
        "q3c": "COPY, index on `q3c_ang2ipix(ra, dec)`, CLUSTER, ANALYZE; "
               "`q3c_radial_query(ra, dec, ra0, dec0, r)`",
        "pgsphere": "COPY with a stored `spoint` column, GiST index, CLUSTER, ANALYZE; "
                    "`pos @ scircle(spoint(...), radians(r))`",
        "duckdb": "`CREATE TABLE AS SELECT * FROM read_parquet(...) ORDER BY dec`; dec/ra "
                  "bounding box + exact haversine",
    }
    for k in order:
        s = sysres[k]
        L.append(f"| {LABELS[k]} | {s.get('version', 'n/a')} | "
                 f"{human_bytes(s.get('size_bytes'))} | {how[k]} |")
    L.append("")
    if ctx._pg is not None and getattr(ctx._pg, "conf", None):
        c = ctx._pg.conf
        L.append("PostgreSQL settings: " + ", ".join(
            f"{k}={str(c[k]).strip(chr(39))}" for k in
            ["shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
             "max_parallel_workers_per_gather", "fsync", "synchronous_commit",
             "full_page_writes", "wal_level", "jit"]) + " (a throwaway cluster tuned for bulk "
                 "load; both PostgreSQL systems share it, with separate tables).\n")
    for k in order:
        for n in sysres[k].get("notes", []):
            L.append(f"- {LABELS[k]}: {n}")
    L.append("")

    # correctness
    L.append("## Correctness (row counts against the reference)\n")
    all_ok = True
    L.append("| system | table rows | " + " | ".join(f"cones r={rlabel(r)} mismatches" for r in args.radii)
             + " | throughput-run mismatches | aggregate |")
    L.append("|---|---|" + "---|" * len(args.radii) + "---|---|")
    for k in order:
        s = sysres[k]
        if "error" in s:
            L.append(f"| {LABELS[k]} | FAILED: {s['error'].splitlines()[0]} |" +
                     " |" * (len(args.radii) + 2))
            all_ok = False
            continue
        cells = []
        for r in args.radii:
            c = s.get("cones", {}).get(str(r))
            nm = len(c["mismatches"]) if c else None
            all_ok &= nm == 0
            cells.append("n/a" if nm is None else ("0" if nm == 0 else f"**{nm} of {args.cones}**"))
        tp = s.get("throughput", {})
        all_ok &= tp.get("mismatches", 1) == 0 and s.get("agg", {}).get("correct", False)
        all_ok &= s.get("count") == args.rows
        rows_cell = f"{s.get('count', 'n/a'):,}" if isinstance(s.get("count"), int) else "n/a"
        if s.get("count") != args.rows:
            rows_cell = f"**{rows_cell}** (expected {args.rows:,})"
        L.append(f"| {LABELS[k]} | {rows_cell} | " + " | ".join(cells) + " | "
                 f"{tp.get('mismatches', 'n/a')} | "
                 f"{'ok' if s.get('agg', {}).get('correct') else '**WRONG**'} |")
    L.append("")
    L.append(("All systems returned the reference row count for every cone and the "
              "reference aggregate." if all_ok else
              "**MISMATCHES: see the table above and the raw JSON; speed figures of a system "
              "that returns wrong answers do not count.**") + "\n")
    for k in order:
        for r in args.radii:
            mm = sysres[k].get("cones", {}).get(str(r), {}).get("mismatches", [])
            if mm:
                L.append(f"- {LABELS[k]}, r={rlabel(r)}: first mismatches " + "; ".join(
                    f"({x['ra']:.6f}, {x['dec']:.6f}) got {x['got']} expected {x['expected']}"
                    for x in mm[:5]))
    L.append("")

    # figures
    L.append("## Figures\n")
    cols = ["load (s, incl. index)"]
    for r in args.radii:
        cols += [f"cone r={rlabel(r)} p50 (ms)", f"cone r={rlabel(r)} p95 (ms)"]
    cols += [f"cone throughput ({args.clients} clients, q/s)", "full-scan aggregate (ms, median)"]
    L.append("| system | " + " | ".join(cols) + " |")
    L.append("|---|" + "---|" * len(cols))

    def row_vals(s):
        v = [s.get("load_s")]
        for r in args.radii:
            c = s.get("cones", {}).get(str(r), {})
            v += [c.get("p50_ms"), c.get("p95_ms")]
        v += [s.get("throughput", {}).get("qps"),
              None if "agg" not in s else s["agg"]["median_s"] * 1e3]
        return v

    for k in order:
        s = sysres[k]
        if "error" in s:
            L.append(f"| {LABELS[k]} | " + " | ".join(["failed"] * len(cols)) + " |")
            continue
        vals = row_vals(s)
        txt = [fmt_s(vals[0])] + [fmt_ms(x) for x in vals[1:-2]] + \
              [("n/a" if vals[-2] is None else f"{vals[-2]:.1f}"), fmt_ms(vals[-1])]
        L.append(f"| {LABELS[k]} | " + " | ".join(txt) + " |")
    L.append("")
    L.append("Load breakdown (s): " + "; ".join(
        f"{LABELS[k]}: " + ", ".join(f"{a} {b:.2f}" for a, b in sysres[k].get("load_breakdown", {}).items())
        for k in ok_systems) + ".\n")
    L.append("Latency: one connection, queries sent one after another, time from sending the "
             "query to having fetched every row (source_id, ra, dec) in Python. Throughput: "
             f"{args.clients} client threads, one connection each, for "
             f"{args.throughput_seconds:g} s, r={args.radii[0]:g}°. Aggregate: `SELECT COUNT(*), "
             f"AVG(phot_g_mean_mag) FROM t WHERE {AGG_WHERE}`, one warm-up then the median of "
             f"{args.agg_repeats}.\n")

    # ratios
    L.append("## Ratios Almagest / peer\n")
    if not alm_ok:
        L.append("Not available: Almagest was not measured in this run.\n")
    else:
        av = row_vals(alm)
        peers = [k for k in ok_systems if k != "almagest"]
        L.append("For load time, latency and aggregate time a ratio above 1 means Almagest is "
                 "slower; for throughput a ratio above 1 means Almagest is faster.\n")
        L.append("| peer | " + " | ".join(cols) + " |")
        L.append("|---|" + "---|" * len(cols))
        for k in peers:
            pv = row_vals(sysres[k])
            cells = []
            for a, b in zip(av, pv):
                cells.append("n/a" if a is None or b is None or b == 0 or
                             (isinstance(a, float) and math.isnan(a)) else f"{a / b:.2f}x")
            L.append(f"| {LABELS[k]} | " + " | ".join(cells) + " |")
        L.append("")

    # cross-match: this run's section, else the one already in the file (it names its own run)
    if res.get("xmatch"):
        L.append(xm.render_section(res, LABELS, ALL_SYSTEMS) + "\n")
    else:
        old = xm.existing_section(path)
        if old:
            L.append(old + "\n")

    L.append("## Reproduce\n")
    L.append("```\nbench/setup.sh            # as root: apt packages + bench/.venv\n"
             f"bench/.venv/bin/python bench/run.py --rows {args.rows} --seed {args.seed}"
             + (f" --systems {args.systems}" if args.systems != ",".join(ALL_SYSTEMS) else "")
             + "\n```\n")
    L.append(f"Raw results: `{res.get('json_path', '')}` (kept outside the repository).\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L))
    log(f"wrote {path}")


# ----------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                    help="comma-separated subset of: " + ",".join(ALL_SYSTEMS))
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"),
                    help="markdown report path ('-' for none)")
    ap.add_argument("--json", default=None, help="raw results JSON (default WORKDIR/results.json)")
    ap.add_argument("--workdir", default=None,
                    help="scratch dir for data, clusters (default /tmp/almagest-bench)")
    ap.add_argument("--gen", choices=["auto", "almagest", "python"], default="auto",
                    help="catalog generator: almagest gen (auto: when the binary exists)")
    ap.add_argument("--cones", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--radii", default="0.2,0.016666666666666666",
                    help="cone radii in degrees (the first is also used for throughput)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--throughput-seconds", type=float, default=10.0)
    ap.add_argument("--agg-repeats", type=int, default=5)
    ap.add_argument("--pg-bindir", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--almagest-bin", default=None)
    ap.add_argument("--almagest-workers", type=int, default=2)
    ap.add_argument("--almagest-grpc-port", type=int, default=50051,
                    help="coordinator gRPC port if standalone has no --grpc-port flag")
    ap.add_argument("--almagest-start-timeout", type=float, default=120.0)
    ap.add_argument("--almagest-standalone-arg", action="append", default=[],
                    help="extra argument for `almagest standalone` (repeatable)")
    ap.add_argument("--almagest-load-arg", action="append", default=[],
                    help="extra argument for `almagest load` (repeatable)")
    ap.add_argument("--note", action="append", default=[],
                    help="free-text note for the report (repeatable), e.g. other load on the machine")
    ap.add_argument("--keep", action="store_true",
                    help="keep the database files in the work dir (data files are always kept)")
    g = ap.add_argument_group("cross-match")
    g.add_argument("--xmatch-targets", type=int, default=10_000,
                   help="targets of the cross-match workload (0: no cross-match)")
    g.add_argument("--xmatch-seed", type=int, default=44)
    g.add_argument("--xmatch-radii", default="1,10", help="match radii in arcsec")
    g.add_argument("--xmatch-repeats", type=int, default=3,
                   help="timed runs per system and radius (after one warm-up); the median counts")
    g.add_argument("--xmatch-timeout", type=float, default=600.0,
                   help="per-query timeout in seconds (reported as 'timeout')")
    g.add_argument("--xmatch-maxrec", type=int, default=10_000_000,
                   help="MAXREC of Almagest's TAP request")
    g.add_argument("--xmatch-idle-wait", type=float, default=300.0,
                   help="after an Almagest timeout, wait up to this long for the server to go idle")
    g.add_argument("--xmatch-only", action="store_true",
                   help="load each system, run only the cross-match, and merge the "
                        "cross-match section into --out (the rest of the file is kept)")
    args = ap.parse_args()
    args.radii = [float(x) for x in args.radii.split(",") if x]
    args.xmatch_radii = [float(x) for x in args.xmatch_radii.split(",") if x]
    if args.xmatch_only and args.xmatch_targets <= 0:
        ap.error("--xmatch-only needs --xmatch-targets > 0")
    args.workdir = args.workdir or "/tmp/almagest-bench"
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in ALL_SYSTEMS]
    if bad:
        ap.error(f"unknown systems {bad}; choose from {ALL_SYSTEMS}")

    ctx = Ctx(args)
    results: dict = ctx.results
    results.update({"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "argv": ["bench/run.py", *sys.argv[1:]], "machine": machine_info()})
    import duckdb
    import psycopg
    results["versions"] = {"psycopg": psycopg.__version__, "duckdb": duckdb.__version__,
                           "pyarrow": pa.__version__, "numpy": np.__version__}
    results["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    log(f"machine: {results['machine']}, load average {results['loadavg_start']}")
    log(f"almagest binary: {ctx.almagest_bin or 'none found'}")

    def cleanup():
        if ctx._pg is not None:
            ctx._pg.stop()
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    # ---- data
    gen = args.gen
    if gen == "auto":
        gen = "almagest" if ctx.almagest_bin else "python"
    if gen == "almagest" and not ctx.almagest_bin:
        ap.error("--gen almagest but no almagest binary found")
    if gen == "python":
        loud("no `almagest gen` in use: generating the catalog with the harness's stand-in "
             "generator (the report will say so)")
    results["gen"] = gen
    meta_path = ctx.parquet.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    gen_s = 0.0
    stale = (gen == "almagest" and ctx.parquet.exists()
             and ctx.almagest_bin.stat().st_mtime > ctx.parquet.stat().st_mtime)
    if (ctx.parquet.exists() and not stale and meta.get("generator") == gen
            and meta.get("rows") == args.rows):
        log(f"reusing {ctx.parquet}")
        gen_s = meta.get("gen_s", 0.0)
    else:
        with Step(f"generate {args.rows:,} rows with {gen}") as s:
            if gen == "almagest":
                r = subprocess.run([str(ctx.almagest_bin), "gen", "--rows", str(args.rows),
                                    "--seed", str(args.seed), "--out", str(ctx.parquet)],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise SystemExit(f"almagest gen failed ({r.returncode}):\n{r.stdout}{r.stderr}")
            else:
                python_gen(args.rows, args.seed, ctx.parquet)
        gen_s = s.seconds
        if ctx.csv.exists():
            ctx.csv.unlink()
        meta = {"generator": gen, "rows": args.rows, "seed": args.seed, "gen_s": gen_s}
        meta_path.write_text(json.dumps(meta))
    ctx.schema = check_schema(ctx.parquet)
    nrows = pq.ParquetFile(ctx.parquet).metadata.num_rows
    if nrows != args.rows:
        raise SystemExit(f"{ctx.parquet} has {nrows} rows, asked for {args.rows}")
    if not ctx.csv.exists() and any(s in systems for s in ("q3c", "pgsphere")):
        with Step("convert Parquet -> CSV for PostgreSQL COPY"):
            parquet_to_csv(ctx.parquet, ctx.csv)
    for p in (ctx.parquet, ctx.csv):
        if p.exists():
            os.chmod(p, 0o644)
    results["data"] = {
        "rows": args.rows, "columns": ctx.schema.names,
        "generator": (f"almagest gen --rows {args.rows} --seed {args.seed}" if gen == "almagest"
                      else "bench/run.py python_gen (stand-in)"),
        "gen_s": gen_s, "parquet_bytes": ctx.parquet.stat().st_size,
        "csv_bytes": ctx.csv.stat().st_size if ctx.csv.exists() else None}

    # ---- reference
    cones = random_centres(args.cones, args.seed + 1)
    warm = random_centres(args.warmup, args.seed + 2)
    ref: dict = {"cones": {}}
    if not args.xmatch_only:
        with Step("reference counts (numpy)"):
            refobj = Reference(ctx.parquet)
            ref = {"cones": {str(r): [refobj.cone_count(ra, dec, r) for ra, dec in cones]
                             for r in args.radii},
                   "agg_count": refobj.agg_count, "agg_avg": refobj.agg_avg,
                   "null_positions": refobj.null_positions}
            del refobj
        results["reference"] = ref
        results["cones"] = cones.tolist()
        if ref["null_positions"]:
            log(f"note: {ref['null_positions']} rows have NULL ra/dec")
    xmd = None
    if args.xmatch_targets > 0:
        with Step(f"cross-match targets ({args.xmatch_targets:,}, seed {args.xmatch_seed}) "
                  "and reference pairs (numpy)") as s:
            cat = xm.Catalog(ctx.parquet)
            tg = xm.make_targets(cat, args.xmatch_targets, args.xmatch_seed)
            xref = {}
            for r_as in args.xmatch_radii:
                pset = xm.reference_pairs(cat, tg, r_as / 3600.0)
                xref[str(r_as)] = {"pairs_set": pset, "pairs": len(pset),
                                   "targets_matched": len({t for t, _ in pset})}
                log(f"   r={r_as:g} arcsec: {len(pset):,} reference pairs, "
                    f"{xref[str(r_as)]['targets_matched']:,} targets matched")
        xmd = {"catalog": cat, "targets": tg, "reference": xref}
        cmd = ["bench/.venv/bin/python", "bench/run.py", "--xmatch-only",
               "--rows", str(args.rows), "--seed", str(args.seed),
               "--xmatch-targets", str(args.xmatch_targets)]
        for flag, val, default in (("--xmatch-seed", args.xmatch_seed, 44),
                                   ("--xmatch-radii", ",".join(f"{r:g}" for r in args.xmatch_radii), "1,10"),
                                   ("--xmatch-repeats", args.xmatch_repeats, 3),
                                   ("--xmatch-timeout", args.xmatch_timeout, 600.0)):
            if val != default:
                cmd += [flag, f"{val:g}" if isinstance(val, float) else str(val)]
        if args.systems != ",".join(ALL_SYSTEMS):
            cmd += ["--systems", args.systems]
        if args.workdir != "/tmp/almagest-bench":
            cmd += ["--workdir", args.workdir]
        results["xmatch"] = {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join(cmd), "catalog_seed": args.seed,
            "targets": len(tg), "near": tg.near, "seed": args.xmatch_seed,
            "radii_arcsec": args.xmatch_radii, "repeats": args.xmatch_repeats,
            "timeout_s": args.xmatch_timeout, "maxrec": args.xmatch_maxrec,
            "ram": human_bytes(results["machine"].get("ram_bytes")),
            "notes": args.note if args.xmatch_only else [],
            "reference_s": s.seconds,
            "reference": {k: {"pairs": v["pairs"], "targets_matched": v["targets_matched"]}
                          for k, v in xref.items()}}

    # ---- systems
    results["systems"] = {}
    for key in systems:
        log(f"===== {LABELS[key]} =====")
        results["systems"][key] = run_system(key, ctx, cones, warm, ref, xmd)
        if key in ("q3c", "pgsphere") and not any(
                k in ("q3c", "pgsphere") for k in systems[systems.index(key) + 1:]):
            if not args.keep:
                try:
                    with ctx.pg().connect() as c:
                        c.execute("DROP TABLE IF EXISTS gaia_q3c, gaia_sph")
                except Exception:  # noqa: BLE001
                    pass
            ctx.pg().stop()
    if not args.keep:
        for p in [ctx.workdir / "pg", ctx.workdir / "almagest-data", ctx.workdir / "bench.duckdb"]:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()

    # ---- outputs
    results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["notes"] = args.note
    json_path = Path(args.json) if args.json else ctx.workdir / (
        "xmatch-results.json" if args.xmatch_only else "results.json")
    results["json_path"] = str(json_path)
    json_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {json_path}")
    if args.out != "-":
        if args.xmatch_only:
            xm.merge_section(Path(args.out), xm.render_section(results, LABELS, ALL_SYSTEMS),
                             REPORT_TITLE)
            log(f"merged the cross-match section into {args.out}")
        else:
            write_report(Path(args.out), ctx, results)

    # ---- summary
    problems = []
    for k, s in results["systems"].items():
        if "error" in s:
            problems.append(f"{k}: {s['error'].splitlines()[0]}")
            continue
        if s.get("count") != args.rows:
            problems.append(f"{k}: table has {s.get('count')} rows")
        for r, x in (s.get("xmatch") or {}).get("radii", {}).items():
            if x.get("status") == "error":
                problems.append(f"{k}: cross-match r={r} arcsec failed: {x.get('error', '')[:200]}")
            if any(not run["correct"] for run in x.get("runs", [])):
                c = x["compare"]
                problems.append(f"{k}: cross-match r={r} arcsec pairs differ from the reference "
                                f"({c['missing']} missing, {c['extra']} extra, "
                                f"{c['duplicates']} duplicates)")
        if args.xmatch_only:
            continue
        for r, c in s.get("cones", {}).items():
            if c["mismatches"]:
                problems.append(f"{k}: {len(c['mismatches'])} cone count mismatches at r={r}")
        if s.get("throughput", {}).get("mismatches"):
            problems.append(f"{k}: {s['throughput']['mismatches']} mismatches under concurrency")
        if not s.get("agg", {}).get("correct"):
            problems.append(f"{k}: wrong aggregate")
    if not args.xmatch_only:
        print("\nsystem           load s   " + "  ".join(f"p50/p95 r={r:g}" for r in args.radii)
              + "   q/s    agg ms")
        for k, s in results["systems"].items():
            if "error" in s or "cones" not in s:
                print(f"{k:<15} FAILED")
                continue
            lat = "  ".join(f"{s['cones'][str(r)]['p50_ms']:6.2f}/{s['cones'][str(r)]['p95_ms']:6.2f}"
                            for r in args.radii)
            print(f"{k:<15} {s['load_s']:7.2f}   {lat}   {s['throughput']['qps']:7.1f} "
                  f"{s['agg']['median_s'] * 1e3:8.1f}")
    if xmd is not None:
        print(f"\ncross-match, {len(xmd['targets']):,} targets (total / query only, median s; pairs)")
        for k, s in results["systems"].items():
            cells = []
            for r, x in (s.get("xmatch") or {}).get("radii", {}).items():
                if x["status"] == "ok":
                    q = x.get("query_median_s")
                    cells.append(f"r={float(r):g}\": {x['total_median_s']:.3f}"
                                 + ("" if q is None else f" / {q:.3f}") + f"; {x['pairs']:,}")
                else:
                    cells.append(f"r={float(r):g}\": {x['status']}")
            print(f"{k:<15} " + ("   ".join(cells) if cells else "FAILED"))
    if problems:
        loud("PROBLEMS:\n" + "\n".join(problems))
        return 1
    log("all systems agree with the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
