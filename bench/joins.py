#!/usr/bin/env python3
"""Catalog JOIN benchmark: Almagest vs PostgreSQL 15 + q3c, PostgreSQL 15 + pgsphere, DuckDB.

Three workloads, every system on the same generated files, one system at a time:

1. self-match: a catalog (default 1,000,000 rows) joined with itself within 5 arcsec,
   pairs with a.source_id <> b.source_id (both orderings);
2. cross-match: a catalog (default 10,000,000 rows) joined with its counterpart survey
   (`almagest gen --counterparts`, ~94.5 % of the rows) within 1 arcsec;
3. light curves: 200 lookups by source_id in the detections child table of the
   self-match catalog (`almagest gen --detections`), p50/p95 over pgwire.

The joins return three exact integer checksums over all pairs (COUNT(*),
SUM(b.id % 1000003), SUM(a.source_id % 999983)) instead of the pairs, so that client
transfer stays out of the timing; they are compared with an exact numpy reference (float64
haversine; zones in dec and RA windows, see pair_reference). Every light curve's row count
(and its mjd values) is compared with the detections file.

Run `bench/setup.sh` once, then e.g.

    bench/.venv/bin/python bench/joins.py --almagest-bin /path/to/release/almagest
    bench/.venv/bin/python bench/joins.py --rows-self 20000 --rows-xmatch 50000 \
        --out /tmp/joins-small.md --workdir /tmp/bj-small --repeats 1

See bench/README.md ("Catalog joins").
"""
from __future__ import annotations

import argparse
import atexit
import datetime as dt
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import run as base  # noqa: E402  (bench/run.py: PgCluster, AlmagestSystem, utilities)
import xmatch as xm  # noqa: E402  (wait_idle, pgsphere's epsilon)
from run import Step, du, human_bytes, lit, log, loud, machine_info, pct  # noqa: E402

REPO = BENCH.parent
ALL_SYSTEMS = ["almagest", "q3c", "pgsphere", "duckdb"]
LABELS = base.LABELS
WORKLOADS = ["self", "xmatch", "lightcurve"]
WL_LABEL = {"self": "self-match", "xmatch": "cross-match", "lightcurve": "light curves"}
MOD_B = 1_000_003          # SUM(b.id % MOD_B)
MOD_A = 999_983            # SUM(a.source_id % MOD_A)
REL_TOL = 1e-9             # pairs within this relative distance of r are a coin toss
PGSPHERE_EPS = xm.PGSPHERE_EPSILON_RAD   # pgsphere's FPle(d, r) is d <= r + 1e-9 (radians)
SUBSET_MAX = 20            # boundary pairs up to which the coin-toss subset is searched exactly
REPORT_TITLE = "# Benchmarks: catalog joins (Almagest vs PostgreSQL + q3c, pgsphere, DuckDB)"
DEFAULT_WORKDIR = "/tmp/almagest-bench-joins"


class QueryTimeout(Exception):
    pass


# ----------------------------------------------------------------------------- data

class Dataset:
    """One `almagest gen` invocation and its output files, reused via a stamp file."""

    def __init__(self, name: str, workdir: Path, rows: int, seed: int, extra: dict[str, str]):
        # extra: gen flag -> output suffix or value, e.g. {"--detections": "det", "--epochs": "5"}
        self.name = name
        self.rows = rows
        self.seed = seed
        stem = f"{name}-{rows}-{seed}"
        self.main = workdir / f"{stem}.parquet"
        self.files: dict[str, Path] = {"main": self.main}
        self.gen_flags: list[str] = []
        for flag, v in extra.items():
            if flag == "--epochs":
                self.gen_flags += [flag, v]
            else:
                p = workdir / f"{stem}-{v}.parquet"
                self.files[v] = p
                self.gen_flags += [flag, str(p)]
        self.stamp = workdir / f"{stem}.stamp.json"
        self.spec = {"name": name, "rows": rows, "seed": seed,
                     "flags": [f for f in self.gen_flags if not f.startswith("/")]}
        self.gen_s: float | None = None
        self.reused = False
        self.generator = ""

    def ensure(self, binary: Path | None) -> None:
        st = json.loads(self.stamp.read_text()) if self.stamp.exists() else {}
        if (st.get("spec") == self.spec and all(p.exists() for p in self.files.values())
                and all(st.get("sizes", {}).get(k) == p.stat().st_size
                        for k, p in self.files.items())):
            log(f"reusing {self.name} data ({', '.join(p.name for p in self.files.values())}; "
                f"stamp {self.stamp.name})")
            self.gen_s = st.get("gen_s")
            self.generator = st.get("command", "")
            self.reused = True
            return
        if binary is None:
            raise SystemExit("no almagest binary for `almagest gen` (give --almagest-bin)")
        for p in self.files.values():
            for q in (p, p.with_suffix(".csv")):
                if q.exists():
                    q.unlink()
        cmd = [str(binary), "gen", "--rows", str(self.rows), "--seed", str(self.seed),
               "--out", str(self.main), *self.gen_flags]
        with Step(f"generate {self.name}: {self.rows:,} rows, seed {self.seed} "
                  f"({' '.join(self.spec['flags']) or 'catalog only'})") as s:
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"almagest gen failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        for ln in (r.stdout + r.stderr).strip().splitlines():
            log("   " + ln.strip())
        self.gen_s = s.seconds
        self.generator = shlex.join(["almagest", *cmd[1:]])
        self.stamp.write_text(json.dumps({
            "spec": self.spec, "gen_s": s.seconds, "binary": str(binary), "command": self.generator,
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "sizes": {k: p.stat().st_size for k, p in self.files.items()}}, indent=1))

    def csv(self, key: str = "main") -> Path:
        """The file as CSV for PostgreSQL's COPY (converted once, kept next to it)."""
        p = self.files[key]
        c = p.with_suffix(".csv")
        if not c.exists() or c.stat().st_mtime < p.stat().st_mtime:
            with Step(f"convert {p.name} -> CSV for PostgreSQL COPY"):
                base.parquet_to_csv(p, c)
            os.chmod(c, 0o644)
        return c

    def info(self) -> dict:
        return {"rows": self.rows, "seed": self.seed, "gen_s": self.gen_s, "reused": self.reused,
                "command": self.generator,
                "files": {k: {"path": str(p), "rows": pq.ParquetFile(p).metadata.num_rows,
                              "bytes": p.stat().st_size,
                              "columns": pq.read_schema(p).names}
                          for k, p in self.files.items()}}


# ----------------------------------------------------------------------------- reference

def _positions(path: Path, id_col: str) -> dict:
    t = pq.read_table(path, columns=[id_col, "ra", "dec"])
    ids = t.column(id_col).to_numpy(zero_copy_only=False).astype(np.int64)
    ra = t.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
    dec = t.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
    if np.isnan(ra).any() or np.isnan(dec).any():
        raise SystemExit(f"{path} has NULL/NaN positions; the reference does not handle them")
    if len(np.unique(ids)) != len(ids):
        raise SystemExit(f"{path}: {id_col} is not unique")
    return {"id": ids, "ra": ra, "dec": dec}


def pair_reference(A: dict, B: dict, r_deg: float, same: bool, chunk: int = 400_000) -> dict:
    """Exact pair checksums of {(a, b): d(a, b) <= r} (a != b when `same`), in numpy.

    Zones of height h >= r in dec; B is sorted by (zone, ra) as one float key
    zone * 1000 + (ra + 20), with the rows within 10 deg of RA 0/360 repeated at ra -/+ 360
    for the wrap. For each row of A, for the zones z-1, z, z+1, the B rows in the RA window
    ra +- asin(sin r / cos dec) (widened by 1e-6 relative + 1e-6 deg; every RA near the poles)
    are found by searchsorted; then the float64 haversine decides. Pairs with
    r (1 - 1e-9) <= d <= (r + pgsphere's 1e-9 rad)(1 + 4e-9) are kept individually (distance and
    both checksum terms) so that the expected sums for r and for pgsphere's r + 1e-9 rad, and
    the coin-toss pairs at either, can be derived afterwards (Expected below).
    """
    r_rad = math.radians(r_deg)
    r_lo = r_rad * (1 - REL_TOL)
    r_hi = (r_rad + PGSPHERE_EPS) * (1 + 4 * REL_TOL)
    rh_deg = math.degrees(r_hi)
    h = rh_deg * (1 + 1e-6)
    WRAP = 10.0
    kb_all = np.fmod(B["id"], MOD_B)
    ka_all = np.fmod(A["id"], MOD_A)
    zb = np.floor((B["dec"] + 90.0) / h).astype(np.int64)
    lo_w = np.nonzero(B["ra"] < WRAP)[0]
    hi_w = np.nonzero(B["ra"] >= 360.0 - WRAP)[0]
    idx = np.concatenate([np.arange(len(B["ra"])), lo_w, hi_w])
    ra_e = np.concatenate([B["ra"], B["ra"][lo_w] + 360.0, B["ra"][hi_w] - 360.0])
    dup = np.concatenate([np.zeros(len(B["ra"]), bool), np.ones(len(lo_w) + len(hi_w), bool)])
    key = zb[idx].astype(np.float64) * 1000.0 + (ra_e + 20.0)
    order = np.argsort(key, kind="stable")
    key, bidx, dup = key[order], idx[order], dup[order]
    del ra_e, order, zb
    count = sum_b = sum_a = 0
    cand_total = 0
    bd, bkb, bka = [], [], []
    sin_rh = math.sin(r_hi)
    for s in range(0, len(A["ra"]), chunk):
        ra = A["ra"][s:s + chunk]
        dec = A["dec"][s:s + chunk]
        n = len(ra)
        za = np.floor((dec + 90.0) / h).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = sin_rh / np.cos(np.radians(np.abs(dec)))
        full = (np.abs(dec) + rh_deg >= 90.0 - 1e-6) | ~(x < 1.0)
        alpha = np.degrees(np.arcsin(np.minimum(np.where(full, 0.0, x), 1.0))) * (1 + 1e-6) + 1e-6
        full |= alpha >= WRAP
        wlo = np.where(full, 0.0, ra + 20.0 - alpha)   # full: every entry of the zone,
        whi = np.where(full, 999.0, ra + 20.0 + alpha)  # repeats dropped below
        los, his, rows = [], [], []
        for dz in (-1.0, 0.0, 1.0):
            zk = (za + dz) * 1000.0
            los.append(np.searchsorted(key, zk + wlo, side="left"))
            his.append(np.searchsorted(key, zk + whi, side="right"))
            rows.append(np.arange(n))
        lo = np.concatenate(los)
        hi = np.concatenate(his)
        arow = np.concatenate(rows)
        cnt = np.maximum(hi - lo, 0)
        tot = int(cnt.sum())
        cand_total += tot
        if tot == 0:
            continue
        ra_rep = np.repeat(arow, cnt)
        start = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
        pos = start + np.arange(tot)
        keep = ~(dup[pos] & full[ra_rep])
        ra_rep, pos = ra_rep[keep], pos[keep]
        bi = bidx[pos]
        ai = ra_rep + s
        d = base.haversine_deg(A["ra"][ai], A["dec"][ai], B["ra"][bi], B["dec"][bi])
        m = d <= r_hi
        if same:
            m &= ai != bi
        d, ai, bi = d[m], ai[m], bi[m]
        core = d < r_lo
        count += int(core.sum())
        sum_b += int(kb_all[bi[core]].sum())
        sum_a += int(ka_all[ai[core]].sum())
        edge = ~core
        if edge.any():
            bd.append(d[edge])
            bkb.append(kb_all[bi[edge]])
            bka.append(ka_all[ai[edge]])
    return {"r_deg": r_deg, "r_rad": r_rad, "core": (count, sum_b, sum_a),
            "edge_d": np.concatenate(bd) if bd else np.zeros(0),
            "edge_b": np.concatenate(bkb) if bkb else np.zeros(0, np.int64),
            "edge_a": np.concatenate(bka) if bka else np.zeros(0, np.int64),
            "candidates": cand_total}


def expected(ref: dict, r_eff_rad: float) -> dict:
    """Expected checksums for d <= r_eff_rad, and the coin-toss pairs at r_eff_rad."""
    c, sb, sa = ref["core"]
    d, eb, ea = ref["edge_d"], ref["edge_b"], ref["edge_a"]
    inside = d <= r_eff_rad
    amb = np.abs(d - r_eff_rad) <= REL_TOL * r_eff_rad
    return {"count": c + int(inside.sum()), "sum_b": sb + int(eb[inside].sum()),
            "sum_a": sa + int(ea[inside].sum()),
            "ambiguous": [(float(x), int(y), int(z), bool(i)) for x, y, z, i in
                          zip(d[amb], eb[amb], ea[amb], inside[amb])]}


def verify(got: tuple[int, int, int], exp: dict) -> tuple[str, str]:
    """('exact'|'boundary'|'mismatch', detail). 'boundary': the difference is exactly a set
    of coin-toss pairs (within 1e-9 relative of r) being counted or not."""
    want = (exp["count"], exp["sum_b"], exp["sum_a"])
    if tuple(got) == want:
        return "exact", ""
    amb = exp["ambiguous"]
    if not amb:
        return "mismatch", (f"count {got[0] - want[0]:+,}, sum_b {got[1] - want[1]:+,}, "
                            f"sum_a {got[2] - want[2]:+,}")
    # start from "no ambiguous pair inside", then look for the subset that is
    base0 = [want[0], want[1], want[2]]
    for _d, b, a, inside in amb:
        if inside:
            base0[0] -= 1
            base0[1] -= b
            base0[2] -= a
    k = got[0] - base0[0]
    if 0 <= k <= len(amb):
        if len(amb) <= SUBSET_MAX:
            for comb in itertools.combinations(amb, k):
                if (base0[1] + sum(x[1] for x in comb) == got[1]
                        and base0[2] + sum(x[2] for x in comb) == got[2]):
                    return "boundary", (f"{k} of the {len(amb)} pairs within 1e-9 relative of "
                                        f"r counted (reference counts "
                                        f"{sum(1 for x in amb if x[3])})")
        else:
            return "boundary", (f"count within the {len(amb)} coin-toss pairs; the sums were "
                                f"not checked subset-wise (more than {SUBSET_MAX})")
    return "mismatch", (f"count {got[0] - want[0]:+,}, sum_b {got[1] - want[1]:+,}, "
                        f"sum_a {got[2] - want[2]:+,} (beyond the {len(amb)} coin-toss pairs)")


def lightcurve_reference(det: Path, cat_ids: np.ndarray, n: int, warm: int, seed: int) -> dict:
    t = pq.read_table(det, columns=["source_id", "mjd"])
    sid = t.column("source_id").to_numpy(zero_copy_only=False).astype(np.int64)
    mjd = t.column("mjd").to_numpy(zero_copy_only=False).astype(np.float64)
    order = np.lexsort((mjd, sid))
    sid, mjd = sid[order], mjd[order]
    rng = np.random.default_rng(seed + 3)
    ids = rng.choice(cat_ids, size=min(n, len(cat_ids)), replace=False)
    wids = np.random.default_rng(seed + 4).choice(cat_ids, size=min(warm, len(cat_ids)),
                                                  replace=False)
    lo = np.searchsorted(sid, ids, side="left")
    hi = np.searchsorted(sid, ids, side="right")
    return {"ids": [int(x) for x in ids], "warm_ids": [int(x) for x in wids],
            "counts": [int(x) for x in hi - lo],
            "mjd": [mjd[a:b] for a, b in zip(lo, hi)], "det_rows": int(len(sid)),
            "sources_with_detections": int(len(np.unique(sid)))}


# ----------------------------------------------------------------------------- SQL

def hav_sql(a: str, b: str) -> str:
    """The float64 haversine distance (radians) of a.ra/a.dec and b.ra/b.dec, as numpy does."""
    return (f"2 * asin(sqrt(least(1.0, pow(sin((radians({b}.dec) - radians({a}.dec)) / 2), 2) + "
            f"cos(radians({a}.dec)) * cos(radians({b}.dec)) * "
            f"pow(sin((radians({b}.ra) - radians({a}.ra)) / 2), 2))))")


def checksum_select(a_id: str, b_id: str) -> str:
    return f"SELECT COUNT(*), SUM({b_id} % {MOD_B}), SUM({a_id} % {MOD_A})"


# ----------------------------------------------------------------------------- systems

class Tables:
    """Which tables a system loads, from the selected workloads."""

    def __init__(self, args):
        self.self_cat = not args.skip_self or not args.skip_lightcurve
        self.det = not args.skip_lightcurve
        self.xmatch = not args.skip_xmatch


class JoinSystem:
    key = "?"

    def __init__(self, ctx: "Ctx"):
        self.ctx = ctx
        self.notes: list[str] = []
        self.loads: dict[str, dict] = {}     # table -> {"rows", "steps": {step: s}, "total_s"}

    # to override
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def version(self) -> str: return ""
    def size_bytes(self) -> int | None: return None
    def load_all(self) -> None: raise NotImplementedError
    def count(self, table_role: str) -> int: raise NotImplementedError
    def join_sql(self, wl: str) -> str: raise NotImplementedError
    def lc_sql(self, sid: int) -> str: raise NotImplementedError
    def run_query(self, sql: str, timeout: float) -> list: raise NotImplementedError
    def explain(self, sql: str) -> str: raise NotImplementedError
    def lc_session(self): raise NotImplementedError   # -> (query(sql) -> rows, close())
    def after_timeout(self) -> str | None: return None


class Ctx:
    """What bench/run.py's AlmagestSystem and PgCluster expect, plus this harness's data."""

    def __init__(self, args):
        self.args = args
        self.workdir = Path(args.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.almagest_bin = base.find_almagest(args.almagest_bin)
        self.results: dict = {}
        self._pg: base.PgCluster | None = None
        self.sets: dict[str, Dataset] = {}
        self.tables = Tables(args)

    def pg(self) -> base.PgCluster:
        if self._pg is None:
            self._pg = base.PgCluster(self.workdir / "pg", Path(self.args.pg_bindir))
        return self._pg


# --- PostgreSQL (q3c, pgsphere)

class PgJoinSystem(JoinSystem):
    prefix = "?"
    ext = "?"
    ext_name = "?"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.conn = None
        self.tabs: list[str] = []

    def t(self, role: str) -> str:
        return f"{self.prefix}_{role}"

    def start(self) -> None:
        self.ctx.pg().start()
        self.conn = self.ctx.pg().connect()
        self.conn.execute(f"CREATE EXTENSION IF NOT EXISTS {self.ext_name}")

    def stop(self) -> None:
        if self.conn is not None:
            try:
                if not self.ctx.args.keep and self.tabs:
                    self.conn.execute("DROP TABLE IF EXISTS " + ", ".join(self.tabs))
            except Exception as e:  # noqa: BLE001
                log(f"{self.key}: dropping tables failed: {e}")
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = None

    def version(self) -> str:
        v = self.conn.execute("SHOW server_version").fetchone()[0]
        e = self.conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s",
                              (self.ext_name,)).fetchone()
        return f"PostgreSQL {v}, {self.ext_name} {e[0] if e else '?'}"

    def size_bytes(self):
        return sum(self.conn.execute(f"SELECT pg_total_relation_size('{t}')").fetchone()[0]
                   for t in self.tabs)

    def _copy(self, table: str, ds: Dataset, key: str, extra_cols: str = "") -> float:
        schema = pq.read_schema(ds.files[key])
        cols = ", ".join(f.name for f in schema)
        ddl = ", ".join(f"{f.name} {base.pg_type(f.type)}" for f in schema) + extra_cols
        csv = ds.csv(key)
        c = self.conn
        c.execute(f"DROP TABLE IF EXISTS {table}")
        with Step(f"{self.key}: CREATE TABLE {table} + COPY ({csv.name})") as s:
            with c.transaction():     # wal_level=minimal: the COPY skips WAL
                c.execute(f"CREATE TABLE {table} ({ddl})")
                if self.ctx.pg().readable_by_server(csv):
                    c.execute(f"COPY {table} ({cols}) FROM '{csv}' (FORMAT csv, HEADER true)")
                else:
                    with c.cursor().copy(f"COPY {table} ({cols}) FROM STDIN "
                                         "(FORMAT csv, HEADER true)") as cp:
                        with open(csv, "rb") as f:
                            while blk := f.read(1 << 20):
                                cp.write(blk)
        self.tabs.append(table)
        return s.seconds

    def _steps(self, table: str, rows: int, steps: list[tuple[str, str]], copy_s: float) -> None:
        rec = {"rows": rows, "steps": {"copy": copy_s}}
        for name, sql in steps:
            with Step(f"{self.key}: {name} ({table})") as s:
                self.conn.execute(sql)
            rec["steps"][name] = s.seconds
        rec["total_s"] = sum(rec["steps"].values())
        self.loads[table] = rec

    def count(self, role):
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {self.t(role)}").fetchone()[0])

    def run_query(self, sql, timeout):
        import psycopg
        c = self.conn
        c.execute(f"SET statement_timeout = {max(1, int(timeout * 1000))}")
        try:
            rows = c.execute(sql).fetchall()
        except psycopg.errors.QueryCanceled as e:
            raise QueryTimeout(str(e).strip()) from e
        finally:
            c.execute("SET statement_timeout = 0")
        return rows

    def explain(self, sql):
        return "\n".join(r[0] for r in self.conn.execute("EXPLAIN " + sql).fetchall())

    def lc_session(self):
        c = self.ctx.pg().connect()
        return (lambda q: c.execute(q).fetchall()), c.close

    def lc_sql(self, sid):
        return f"SELECT mjd, mag FROM {self.t('det')} WHERE source_id = {int(sid)} ORDER BY mjd"


class Q3cJoin(PgJoinSystem):
    key = "q3c"
    prefix = "q3c"
    ext_name = "q3c"

    def load_all(self):
        ctx, T = self.ctx, self.ctx.tables
        roles = []
        if T.self_cat:
            roles.append(("scat", ctx.sets["self"], "main"))
        if T.xmatch:
            roles += [("xcat", ctx.sets["xmatch"], "main"), ("xcp", ctx.sets["xmatch"], "cp")]
        for role, ds, key in roles:
            t = self.t(role)
            copy_s = self._copy(t, ds, key)
            self._steps(t, pq.ParquetFile(ds.files[key]).metadata.num_rows, [
                ("CREATE INDEX (q3c_ang2ipix)",
                 f"CREATE INDEX {t}_ipix ON {t} (q3c_ang2ipix(ra, dec))"),
                ("CLUSTER", f"CLUSTER {t} USING {t}_ipix"),
                ("ANALYZE", f"ANALYZE {t}")], copy_s)
        if T.det:
            t = self.t("det")
            ds = ctx.sets["self"]
            copy_s = self._copy(t, ds, "det")
            self._steps(t, pq.ParquetFile(ds.files["det"]).metadata.num_rows, [
                ("CREATE INDEX (B-tree on source_id)", f"CREATE INDEX {t}_sid ON {t} (source_id)"),
                ("CLUSTER", f"CLUSTER {t} USING {t}_sid"),
                ("ANALYZE", f"ANALYZE {t}")], copy_s)

    def join_sql(self, wl):
        a = self.ctx.args
        if wl == "self":
            return (checksum_select("a.source_id", "b.source_id")
                    + f" FROM {self.t('scat')} a JOIN {self.t('scat')} b "
                    f"ON q3c_join(a.ra, a.dec, b.ra, b.dec, {lit(a.self_radius / 3600.0)}) "
                    "WHERE a.source_id <> b.source_id")
        # q3c_join(ra1, dec1, ra2, dec2, r) uses the index on q3c_ang2ipix(ra2, dec2): b inner
        return (checksum_select("a.source_id", "b.obj_id")
                + f" FROM {self.t('xcat')} a JOIN {self.t('xcp')} b "
                f"ON q3c_join(a.ra, a.dec, b.ra, b.dec, {lit(a.xmatch_radius / 3600.0)})")


class PgSphereJoin(PgJoinSystem):
    key = "pgsphere"
    prefix = "sph"
    ext_name = "pg_sphere"
    POS = " , pos spoint GENERATED ALWAYS AS (spoint(radians(ra), radians(dec))) STORED"

    def load_all(self):
        ctx, T = self.ctx, self.ctx.tables
        roles = []
        if T.self_cat and not ctx.args.skip_self:
            roles.append(("scat", ctx.sets["self"], "main"))
        if T.xmatch:
            roles += [("xcat", ctx.sets["xmatch"], "main"), ("xcp", ctx.sets["xmatch"], "cp")]
        for role, ds, key in roles:
            t = self.t(role)
            copy_s = self._copy(t, ds, key, self.POS)
            self._steps(t, pq.ParquetFile(ds.files[key]).metadata.num_rows, [
                ("CREATE INDEX USING gist(pos)", f"CREATE INDEX {t}_pos ON {t} USING gist (pos)"),
                ("CLUSTER", f"CLUSTER {t} USING {t}_pos"),
                ("ANALYZE", f"ANALYZE {t}")], copy_s)
        if T.det:
            self.notes.append("light curves not repeated here: they use no spatial extension, "
                              "the PostgreSQL figure is the q3c one (same server, B-tree)")

    def join_sql(self, wl):
        a = self.ctx.args
        if wl == "self":
            return (checksum_select("a.source_id", "b.source_id")
                    + f" FROM {self.t('scat')} a JOIN {self.t('scat')} b "
                    f"ON a.pos @ scircle(b.pos, radians({lit(a.self_radius / 3600.0)})) "
                    "WHERE a.source_id <> b.source_id")
        return (checksum_select("a.source_id", "b.obj_id")
                + f" FROM {self.t('xcat')} a JOIN {self.t('xcp')} b "
                f"ON a.pos @ scircle(b.pos, radians({lit(a.xmatch_radius / 3600.0)}))")


# --- DuckDB

class DuckJoin(JoinSystem):
    key = "duckdb"

    def start(self):
        import duckdb
        self.path = self.ctx.workdir / "joins.duckdb"
        for p in (self.path, Path(str(self.path) + ".wal")):
            if p.exists():
                p.unlink()
        self.db = duckdb.connect(str(self.path))
        self.threads = self.db.execute("SELECT current_setting('threads')").fetchone()[0]

    def stop(self):
        try:
            self.db.close()
        except Exception:  # noqa: BLE001
            pass
        if not self.ctx.args.keep:
            for p in (self.path, Path(str(self.path) + ".wal")):
                if p.exists():
                    p.unlink()

    def version(self):
        import duckdb
        return f"DuckDB {duckdb.__version__} ({self.threads} threads)"

    def size_bytes(self):
        return du(self.path)

    def load_all(self):
        ctx, T = self.ctx, self.ctx.tables
        todo = []
        if T.self_cat:
            todo.append(("scat", ctx.sets["self"].files["main"], "dec"))
        if T.det:
            todo.append(("det", ctx.sets["self"].files["det"], "source_id"))
        if T.xmatch:
            todo += [("xcat", ctx.sets["xmatch"].files["main"], "dec"),
                     ("xcp", ctx.sets["xmatch"].files["cp"], "dec")]
        for t, path, order in todo:
            with Step(f"duckdb: CREATE TABLE {t} AS SELECT * FROM read_parquet(...) "
                      f"ORDER BY {order}") as s:
                self.db.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{path}') "
                                f"ORDER BY {order}")
                self.db.execute("CHECKPOINT")
            self.loads[t] = {"rows": pq.ParquetFile(path).metadata.num_rows,
                             "steps": {f"create+sort by {order}+checkpoint": s.seconds},
                             "total_s": s.seconds}
        self.notes.append("no index: catalogs sorted by dec, detections by source_id (zone maps "
                          "prune the light-curve scans); the joins are zones joins (hash join on "
                          "the zone, then the RA window and the exact haversine)")

    def count(self, role):
        return int(self.db.execute(f"SELECT COUNT(*) FROM {role}").fetchone()[0])

    @staticmethod
    def zones_sql(a_tab: str, a_id: str, b_tab: str, b_id: str, r_deg: float, same: bool) -> str:
        h = r_deg * (1 + 1e-6)                       # zone height >= r
        sinr = math.sin(math.radians(r_deg))
        alpha = (f"CASE WHEN abs(dec) + {lit(r_deg)} >= 90.0 THEN 360.0 "   # every RA near a pole
                 f"ELSE degrees(asin(least(1.0, {lit(sinr)} / cos(radians(abs(dec)))))) "
                 f"* (1 + 1e-6) + 1e-9 END")
        zone = f"CAST(floor((dec + 90.0) / {lit(h)}) AS BIGINT)"
        return (
            f"WITH a AS (SELECT {a_id} AS aid, ra, dec, {zone} AS zone, {alpha} AS alpha "
            f"FROM {a_tab}), "
            f"b AS (SELECT {b_id} AS bid, ra, dec, {zone} AS zone FROM {b_tab}), "
            "a3 AS (SELECT a.*, a.zone + o.dz AS jz FROM a CROSS JOIN "
            "(VALUES (-1), (0), (1)) AS o(dz)) "
            + checksum_select("a3.aid", "b.bid")
            + " FROM a3 JOIN b ON b.zone = a3.jz "
            "WHERE (abs(b.ra - a3.ra) <= a3.alpha OR abs(b.ra - a3.ra) >= 360.0 - a3.alpha) "
            f"AND {hav_sql('a3', 'b')} <= {lit(math.radians(r_deg))}"
            + (" AND a3.aid <> b.bid" if same else ""))

    def join_sql(self, wl):
        a = self.ctx.args
        if wl == "self":
            return self.zones_sql("scat", "source_id", "scat", "source_id",
                                  a.self_radius / 3600.0, True)
        return self.zones_sql("xcat", "source_id", "xcp", "obj_id", a.xmatch_radius / 3600.0, False)

    def lc_sql(self, sid):
        return f"SELECT mjd, mag FROM det WHERE source_id = {int(sid)} ORDER BY mjd"

    def run_query(self, sql, timeout):
        import duckdb
        cur = self.db.cursor()
        timer = threading.Timer(timeout, cur.interrupt)
        timer.start()
        try:
            return cur.execute(sql).fetchall()
        except duckdb.InterruptException as e:
            raise QueryTimeout(f"interrupted after {timeout:g} s") from e
        finally:
            timer.cancel()
            cur.close()

    def explain(self, sql):
        return "\n".join(str(r[-1]) for r in self.db.execute("EXPLAIN " + sql).fetchall())

    def lc_session(self):
        cur = self.db.cursor()
        return (lambda q: cur.execute(q).fetchall()), cur.close


# --- Almagest

class AlmagestJoin(base.AlmagestSystem, JoinSystem):
    """Start/stop/connect/version from bench/run.py's AlmagestSystem; loads and queries here."""
    key = "almagest"
    DB = "bench"

    def __init__(self, ctx):
        base.AlmagestSystem.__init__(self, ctx)
        self.loads = {}
        self.conn = None
        self.first_load = True

    def start(self):
        base.AlmagestSystem.start(self)
        self.conn = self.connect()

    def stop(self):
        try:
            if self.conn is not None:
                self.conn.close()
        except Exception:  # noqa: BLE001
            pass
        base.AlmagestSystem.stop(self)
        if not self.ctx.args.keep and getattr(self, "datadir", None) and self.datadir.exists():
            shutil.rmtree(self.datadir, ignore_errors=True)

    def size_bytes(self):
        return du(self.datadir)

    def t(self, role):
        return f"{self.DB}.{role}"

    def _load(self, role: str, path: Path, spec: list[str]) -> None:
        a = self.ctx.args
        args = [str(self.bin), "load", "--quiet", "--coordinator",
                f"http://127.0.0.1:{self.grpc_port}",
                "--cluster-secret-file", str(self.datadir / "coordinator" / "cluster-secret"),
                "--table", self.t(role), *spec]
        if self.first_load:   # this load creates the database: its chunking and margin
            args += ["--chunk-depth", str(a.almagest_chunk_depth),
                     "--overlap-arcmin", f"{a.almagest_overlap_arcmin:g}"]
        args += [*a.almagest_load_arg, str(path)]
        log("running: " + " ".join(args))
        with Step(f"almagest: load {self.t(role)}") as s:
            r = subprocess.run(args, capture_output=True, text=True)
        out = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
        with open(self.ctx.workdir / "almagest-load.log", "a") as f:
            f.write(f"$ {shlex.join(args)}\n{out}\n")
        if r.returncode != 0:
            raise RuntimeError(f"almagest load {self.t(role)} failed ({r.returncode}):\n"
                               f"{out[-3000:]}")
        self.first_load = False
        m = re.search(r"loaded .*", out)
        rec = {"rows": pq.ParquetFile(path).metadata.num_rows, "steps": {"load": s.seconds},
               "total_s": s.seconds, "command": shlex.join(["almagest", *args[1:]]),
               "loader_says": m.group(0).strip() if m else None}
        self.loads[self.t(role)] = rec
        if rec["loader_says"]:
            log("   " + rec["loader_says"])

    def load_all(self):
        ctx, T = self.ctx, self.ctx.tables
        a = ctx.args
        self.notes.append(f"database `{self.DB}` created by the first load with "
                          f"--chunk-depth {a.almagest_chunk_depth} and --overlap-arcmin "
                          f"{a.almagest_overlap_arcmin:g} (the join radii must not exceed the "
                          "margin for chunk-local joins); all tables in that database share the "
                          "chunking")
        if T.self_cat:
            self._load("scat", ctx.sets["self"].files["main"],
                       ["--ra", "ra", "--dec", "dec", "--key", "source_id"])
        if T.det:
            self._load("det", ctx.sets["self"].files["det"],
                       ["--director", self.t("scat"), "--director-key", "source_id"])
        if T.xmatch:
            self._load("xcat", ctx.sets["xmatch"].files["main"],
                       ["--ra", "ra", "--dec", "dec", "--key", "source_id"])
            self._load("xcp", ctx.sets["xmatch"].files["cp"],
                       ["--ra", "ra", "--dec", "dec", "--key", "obj_id"])

    def count(self, role):
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {self.t(role)}").fetchone()[0])

    def join_sql(self, wl):
        a = self.ctx.args
        if wl == "self":
            return (checksum_select("a.source_id", "b.source_id")
                    + f" FROM {self.t('scat')} a JOIN {self.t('scat')} b ON 1 = CONTAINS("
                    f"POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, "
                    f"{lit(a.self_radius / 3600.0)})) WHERE a.source_id <> b.source_id")
        return (checksum_select("a.source_id", "b.obj_id")
                + f" FROM {self.t('xcat')} a JOIN {self.t('xcp')} b ON 1 = CONTAINS("
                f"POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, "
                f"{lit(a.xmatch_radius / 3600.0)}))")

    def lc_sql(self, sid):
        return f"SELECT mjd, mag FROM {self.t('det')} WHERE source_id = {int(sid)} ORDER BY mjd"

    def run_query(self, sql, timeout):
        import psycopg
        c = self.conn
        c.execute(f"SET statement_timeout = {max(1, int(timeout * 1000))}")
        # belt and braces: a cancel request if the server's own timeout does not fire
        timer = threading.Timer(timeout + 60.0, c.cancel)
        timer.start()
        try:
            return c.execute(sql).fetchall()
        except psycopg.errors.QueryCanceled as e:
            raise QueryTimeout(str(e).strip()) from e
        finally:
            timer.cancel()
            try:
                c.execute("SET statement_timeout = 0")
            except Exception:  # noqa: BLE001
                self.conn = self.connect()

    def explain(self, sql):
        rows = self.conn.execute("EXPLAIN " + sql).fetchall()
        return "\n".join(f"{r[0]}:\n{r[1]}" if len(r) > 1 else str(r[0]) for r in rows)

    def lc_session(self):
        c = self.connect()
        return (lambda q: c.execute(q).fetchall()), c.close

    def after_timeout(self):
        waited = xm.wait_idle(self.proc.pid, self.ctx.args.idle_wait)
        msg = (f"still busy after {self.ctx.args.idle_wait:g} s" if waited is None
               else f"idle after {waited:.0f} s")
        log(f"almagest after a timeout: {msg}")
        return msg


SYSTEM_CLASSES = {"almagest": AlmagestJoin, "q3c": Q3cJoin, "pgsphere": PgSphereJoin,
                  "duckdb": DuckJoin}


# ----------------------------------------------------------------------------- measurement

def almagest_plan_summary(plan: str) -> dict:
    lines = [ln.strip() for ln in plan.splitlines()]
    frag = []
    for ln in lines:
        if "FragmentExec" in ln:
            i, j = ln.find("fragment=["), ln.rfind("]")
            frag.append(ln[:i] + "fragment=[…]" + ln[j + 1:] if 0 <= i < j else ln)
    local = [ln for ln in frag if "chunk-local" in ln]
    return {"chunk_local": bool(local), "fragment_lines": frag, "chunk_local_lines": local}


def run_join(sys_: JoinSystem, wl: str, ref: dict, args) -> dict:
    sql = sys_.join_sql(wl)
    out: dict = {"sql": sql, "status": "ok", "runs": []}
    try:
        out["plan"] = sys_.explain(sql)
    except Exception as e:  # noqa: BLE001
        out["plan"] = f"<EXPLAIN failed: {e}>"
    if sys_.key == "almagest":
        out["plan_summary"] = almagest_plan_summary(out["plan"])
        s = out["plan_summary"]
        log(f"   EXPLAIN: chunk-local join: {'yes' if s['chunk_local'] else 'NO'}; "
            + (s["chunk_local_lines"] or s["fragment_lines"] or ["(no FragmentExec line)"])[0])
    else:
        out["plan_nodes"] = base.plan_nodes(out["plan"])
    r_as = args.self_radius if wl == "self" else args.xmatch_radius
    r_eff = math.radians(r_as / 3600.0) + (PGSPHERE_EPS if sys_.key == "pgsphere" else 0.0)
    exp = expected(ref, r_eff)
    out["expected"] = {k: v for k, v in exp.items()}
    for i in range(1 + args.repeats):
        what = "warm-up" if i == 0 else f"run {i}/{args.repeats}"
        try:
            with Step(f"{sys_.key}: {WL_LABEL[wl]} ({what})") as st:
                rows = sys_.run_query(sql, args.timeout)
        except QueryTimeout as e:
            out["status"] = "timeout"
            out["timeout_at"] = what
            out["error"] = str(e)
            loud(f"{sys_.key}: {WL_LABEL[wl]} timed out ({what}, {args.timeout:g} s): {e}")
            after = sys_.after_timeout()
            if after:
                out["after_timeout"] = after
            break
        except Exception as e:  # noqa: BLE001
            out["status"] = "error"
            out["error"] = f"{type(e).__name__}: {e}"
            loud(f"{sys_.key}: {WL_LABEL[wl]} failed ({what}): {out['error'][:2000]}")
            break
        c, sb, sa = rows[0]
        got = (int(c or 0), int(sb or 0), int(sa or 0))
        verdict, detail = verify(got, exp)
        run = {"what": what, "seconds": st.seconds, "checksums": list(got), "verdict": verdict,
               "detail": detail}
        out["runs"].append(run)
        log(f"   {st.seconds:.3f} s: count {got[0]:,}, sum_b {got[1]:,}, sum_a {got[2]:,} -> "
            f"{verdict}{(': ' + detail) if detail else ''}")
        if verdict == "mismatch":
            loud(f"{sys_.key}: {WL_LABEL[wl]} checksums differ from the reference: got {got}, "
                 f"expected {(exp['count'], exp['sum_b'], exp['sum_a'])} ({detail})")
    timed = [r["seconds"] for r in out["runs"][1:]]
    if out["status"] == "ok":
        if timed:
            out["min_s"] = min(timed)
            out["median_s"] = statistics.median(timed)
        else:
            out["status"] = "error"
            out["error"] = "no timed runs"
    if out["runs"]:
        out["checksums"] = out["runs"][-1]["checksums"]
        bad = [r for r in out["runs"] if r["verdict"] == "mismatch"]
        out["verdict"] = "mismatch" if bad else out["runs"][-1]["verdict"]
        out["detail"] = (bad[0] if bad else out["runs"][-1])["detail"]
        if len({tuple(r["checksums"]) for r in out["runs"]}) > 1:
            out["verdict"] = "mismatch"
            out["detail"] = "runs disagree: " + "; ".join(str(r["checksums"]) for r in out["runs"])
    return out


def run_lightcurve(sys_: JoinSystem, lc: dict) -> dict:
    q, close = sys_.lc_session()
    out: dict = {"sql_example": sys_.lc_sql(lc["ids"][0])}
    try:
        with Step(f"{sys_.key}: light curves, {len(lc['warm_ids'])} warm-up lookups"):
            for sid in lc["warm_ids"]:
                q(sys_.lc_sql(sid))
        times, counts, value_bad = [], [], []
        with Step(f"{sys_.key}: light curves, {len(lc['ids'])} timed lookups (one connection)"):
            for i, sid in enumerate(lc["ids"]):
                t = time.perf_counter()
                rows = q(sys_.lc_sql(sid))
                times.append(time.perf_counter() - t)
                counts.append(len(rows))
                mjd = np.array([float(r[0]) for r in rows])
                ref = lc["mjd"][i]
                if len(mjd) == len(ref) and not np.allclose(mjd, ref, rtol=1e-12, atol=0):
                    value_bad.append(i)
        mism = [{"source_id": lc["ids"][i], "got": c, "expected": e}
                for i, (c, e) in enumerate(zip(counts, lc["counts"])) if c != e]
        out.update({"p50_ms": pct(times, 50) * 1e3, "p95_ms": pct(times, 95) * 1e3,
                    "mean_ms": statistics.fmean(times) * 1e3, "max_ms": max(times) * 1e3,
                    "rows_total": sum(counts), "count_mismatches": mism,
                    "value_mismatches": len(value_bad), "status": "ok"})
        log(f"   p50 {out['p50_ms']:.2f} ms, p95 {out['p95_ms']:.2f} ms, {sum(counts):,} rows, "
            f"{len(mism)} row-count mismatches, {len(value_bad)} mjd mismatches")
        if mism or value_bad:
            loud(f"{sys_.key}: light curves differ from the detections file: {len(mism)} row "
                 f"counts (first {mism[:3]}), {len(value_bad)} mjd lists")
        try:
            out["plan"] = sys_.explain(sys_.lc_sql(lc["ids"][0]))
        except Exception as e:  # noqa: BLE001
            out["plan"] = f"<EXPLAIN failed: {e}>"
    except Exception as e:  # noqa: BLE001
        out["status"] = "error"
        out["error"] = f"{type(e).__name__}: {e}"
        loud(f"{sys_.key}: light curves failed: {out['error'][:2000]}")
    finally:
        try:
            close()
        except Exception:  # noqa: BLE001
            pass
    return out


def run_system(key: str, ctx: Ctx, refs: dict) -> dict:
    args = ctx.args
    out: dict = {"label": LABELS[key]}
    sys_ = None
    try:
        sys_ = SYSTEM_CLASSES[key](ctx)
        with Step(f"{key}: start") as s:
            sys_.start()
        out["start_s"] = s.seconds
        with Step(f"{key}: load (all tables, incl. indexes)") as s:
            sys_.load_all()
        out["load_s"] = s.seconds
        out["loads"] = sys_.loads
        out["version"] = sys_.version()
        out["size_bytes"] = sys_.size_bytes()
        counts = {}
        for role, exp_rows in ctx.expected_rows.items():
            if key == "pgsphere" and role in ("det",) or (
                    key == "pgsphere" and role == "scat" and args.skip_self):
                continue
            n = sys_.count(role)
            counts[role] = n
            if n != exp_rows:
                out.setdefault("count_mismatch", {})[role] = (n, exp_rows)
                loud(f"{key}: table {role} holds {n:,} rows, expected {exp_rows:,}")
        out["counts"] = counts
        for wl in ("self", "xmatch"):
            if getattr(args, f"skip_{wl}"):
                continue
            log(f"--- {key}: {WL_LABEL[wl]}")
            out[wl] = run_join(sys_, wl, refs[wl], args)
        if not args.skip_lightcurve and key != "pgsphere":
            out["lightcurve"] = run_lightcurve(sys_, refs["lightcurve"])
    except Exception as e:  # noqa: BLE001
        import traceback
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
        loud(f"{key} FAILED: {out['error'][:3000]}")
        if sys_ is not None and isinstance(sys_, base.AlmagestSystem) and sys_.proc is not None:
            out["log_tail"] = sys_.log_tail(60)
    finally:
        if sys_ is not None:
            out["notes"] = sys_.notes
            try:
                sys_.stop()
            except Exception as e:  # noqa: BLE001
                log(f"{key}: stop failed: {e}")
    return out


# ----------------------------------------------------------------------------- report

def f_s(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def f_int(v) -> str:
    return "n/a" if v is None else f"{v:,}"


def ratio(v, ref) -> str:
    if v is None or ref is None or not ref:
        return "n/a"
    return f"{v / ref:.2f}x"


def rerun_command(argv: list[str]) -> str:
    return shlex.join(["bench/.venv/bin/python", "bench/joins.py", *argv])


def write_report(path: Path, ctx: Ctx, res: dict) -> None:
    args = ctx.args
    m = res["machine"]
    sysres: dict = res["systems"]
    order = [k for k in res["systems_order"] if k in sysres]
    L: list[str] = [REPORT_TITLE + "\n"]
    L.append(f"Generated by `bench/joins.py` on {res['date']}. All systems ran on the same "
             "machine in the same run, one after another (never two at once), on the same "
             "generated files.\n")
    L.append("Rerun with:\n\n```\n" + res["command"] + "\n```\n")
    for n in res.get("notes", []):
        L.append(f"> Note: {n}\n")
    if res["loadavg_start"]:
        L.append(f"> Load average at the start {' '.join(res['loadavg_start'])}, at the end "
                 f"{' '.join(res.get('loadavg_end', []))} (1/5/15 min): anything else running "
                 "on the machine shows up here.\n")
    missing = [s for s in ALL_SYSTEMS if s not in sysres]
    if missing:
        L.append("> Not measured in this run: " + ", ".join(LABELS[s] for s in missing)
                 + " (not selected with --systems).\n")
    L.append("## Machine\n")
    L.append("| | |\n|---|---|")
    L.append(f"| CPU | {m.get('cpu', '?')} |")
    L.append(f"| cores | {m.get('cores')} |")
    L.append(f"| RAM | {human_bytes(m.get('ram_bytes'))} |")
    L.append(f"| OS | {m.get('os', '?')} (kernel {m.get('kernel')}) |")
    v = res["versions"]
    L.append(f"| client | Python {m.get('python')}, psycopg {v['psycopg']}, duckdb {v['duckdb']}, "
             f"numpy {v['numpy']}, pyarrow {v['pyarrow']}; same machine |")
    L.append("")

    L.append("## Data\n")
    L.append("| set | file | rows | size | generated by | generation time |")
    L.append("|---|---|---|---|---|---|")
    for name, d in res["data"].items():
        for k, f in d["files"].items():
            gen = (f"`{d['command']}`" if k == "main" else "same command")
            t = (f"{d['gen_s']:.1f} s" + (" (reused)" if d["reused"] else "")) \
                if k == "main" and d["gen_s"] is not None else ""
            L.append(f"| {name} | `{Path(f['path']).name}` | {f['rows']:,} | "
                     f"{human_bytes(f['bytes'])} | {gen} | {t} |")
    L.append("")
    L.append("- self-match catalog: `almagest gen --detections ... --epochs "
             f"{args.epochs}`; its detections are the light-curve table (a child table of the "
             "catalog in Almagest).")
    L.append("- cross-match catalog: `almagest gen --counterparts ...`: the counterpart "
             "survey holds 90 % of the sources moved to J2000.0 by their proper motions plus a "
             "0.1″ error, and 5 % spurious sources.")
    L.append("- PostgreSQL loads CSV files converted from the Parquet files by the harness "
             "(pyarrow); DuckDB and Almagest read the Parquet files.\n")

    L.append("## Workloads\n")
    L.append(f"1. **Self-match**: the {args.rows_self:,}-row catalog with itself within "
             f"{args.self_radius:g}″, pairs with a.source_id <> b.source_id (both orderings).")
    L.append(f"2. **Cross-match**: the {args.rows_xmatch:,}-row catalog with its counterpart "
             f"survey within {args.xmatch_radius:g}″.")
    L.append(f"3. **Light curves**: {args.lc_lookups} lookups `SELECT mjd, mag FROM det WHERE "
             f"source_id = X ORDER BY mjd` (random existing source_ids of the self-match "
             f"catalog, seed {args.seed + 3}) after {args.lc_warmup} warm-up lookups (seed "
             f"{args.seed + 4}), one connection, sequential; time includes fetching the rows.")
    L.append("")
    L.append(f"The joins return `COUNT(*), SUM(b.id % {MOD_B}), SUM(a.source_id % {MOD_A})` "
             "over all pairs (b.id: obj_id for the cross-match, source_id for the self-match) so "
             "that no pairs travel to the client; every run's three numbers are checked. "
             f"Each join runs once untimed (warm-up), then {args.repeats} timed runs "
             f"(min and median reported); timeout {args.timeout:g} s per query.\n")
    L.append("<details><summary>SQL per system</summary>\n")
    for k in order:
        s = sysres[k]
        for wl in ("self", "xmatch"):
            if wl in s:
                L.append(f"{LABELS[k]}, {WL_LABEL[wl]}:\n\n```sql\n{s[wl]['sql']}\n```\n")
        if "lightcurve" in s:
            L.append(f"{LABELS[k]}, light curve:\n\n```sql\n{s['lightcurve']['sql_example']}"
                     "\n```\n")
    L.append("</details>\n")

    L.append("## Systems and loads\n")
    L.append("| system | version | load (s, all tables, incl. indexes) | on-disk size | tables |")
    L.append("|---|---|---|---|---|")
    for k in order:
        s = sysres[k]
        if "loads" not in s:
            L.append(f"| {LABELS[k]} | {s.get('version', 'n/a')} | FAILED | | "
                     f"{s.get('error', '').splitlines()[0] if s.get('error') else ''} |")
            continue
        parts = []
        for t, rec in s["loads"].items():
            steps = ", ".join(f"{n} {v:.1f}" for n, v in rec["steps"].items())
            parts.append(f"`{t}` {rec['rows']:,} rows: {rec['total_s']:.1f} s ({steps})")
        L.append(f"| {LABELS[k]} | {s.get('version', 'n/a')} | {f_s(s.get('load_s'))} | "
                 f"{human_bytes(s.get('size_bytes'))} | {'; '.join(parts)} |")
    L.append("")
    if "almagest" in sysres and sysres["almagest"].get("loads"):
        L.append("Almagest loader output:\n")
        for t, rec in sysres["almagest"]["loads"].items():
            L.append(f"- `{t}`: {rec.get('loader_says') or 'n/a'}")
        L.append("")
    if ctx._pg is not None and getattr(ctx._pg, "conf", None):
        c = ctx._pg.conf
        L.append("PostgreSQL settings: " + ", ".join(
            f"{k}={str(c[k]).strip(chr(39))}" for k in
            ["shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
             "max_parallel_workers_per_gather", "fsync", "synchronous_commit",
             "full_page_writes", "wal_level", "jit"]) + " (a throwaway cluster, as in "
                 "bench/run.py; q3c and pgsphere share it with separate tables; each system's "
                 "tables are dropped after it ran).\n")
    for k in order:
        for n in sysres[k].get("notes", []):
            L.append(f"- {LABELS[k]}: {n}")
        if "error" in sysres[k]:
            L.append(f"- {LABELS[k]}: **FAILED**: `{sysres[k]['error'].splitlines()[0]}`")
    L.append("")

    # correctness
    L.append("## Correctness\n")
    L.append("Reference: numpy, float64 haversine, every pair with d ≤ r (zones + RA windows, "
             "see `pair_reference` in bench/joins.py). Pairs within 1e-9 relative of r are a "
             "floating-point coin toss (each system computes the distance its own way); their "
             "number is listed, and a difference made of exactly such pairs is accepted as "
             "\"= reference (boundary)\". pgsphere compares with a fixed tolerance "
             f"(`FPle(d, r)` is d ≤ r + {PGSPHERE_EPS:g} rad), so its reference is the pair set "
             "for r + 1e-9 rad, shown separately.\n")
    all_ok = True
    L.append(f"| workload | system | COUNT(*) | SUM(b.id % {MOD_B}) | SUM(a.source_id % {MOD_A}) "
             "| vs reference |")
    L.append("|---|---|---|---|---|---|")
    for wl in ("self", "xmatch"):
        if wl not in res["reference"]:
            continue
        rr = res["reference"][wl]
        L.append(f"| {WL_LABEL[wl]} | **reference** (r = {rr['r_arcsec']:g}″) | "
                 f"{rr['count']:,} | {rr['sum_b']:,} | {rr['sum_a']:,} | "
                 f"{rr['ambiguous']} pairs within 1e-9 relative of r |")
        if any(k == "pgsphere" and wl in sysres[k] for k in order):
            p = rr["pgsphere"]
            L.append(f"| {WL_LABEL[wl]} | reference for pgsphere (r + 1e-9 rad) | "
                     f"{p['count']:,} | {p['sum_b']:,} | {p['sum_a']:,} | "
                     f"{p['count'] - rr['count']:+,} pairs vs r; {p['ambiguous']} coin-toss "
                     "pairs |")
        for k in order:
            s = sysres[k]
            x = s.get(wl)
            if x is None:
                if "error" in s:
                    L.append(f"| {WL_LABEL[wl]} | {LABELS[k]} | | | | **FAILED** |")
                    all_ok = False
                continue
            if not x.get("checksums"):
                L.append(f"| {WL_LABEL[wl]} | {LABELS[k]} | | | | {x['status']}"
                         f"{' (' + x['timeout_at'] + ')' if x.get('timeout_at') else ''}: "
                         f"no result |")
                all_ok &= x["status"] == "timeout"
                continue
            c = x["checksums"]
            vd = x["verdict"]
            cell = {"exact": "= reference", "boundary": f"= reference (boundary: {x['detail']})",
                    "mismatch": f"**MISMATCH** ({x['detail']})"}[vd]
            if k == "pgsphere" and vd != "mismatch":
                cell += " (for r + 1e-9 rad)"
            all_ok &= vd != "mismatch"
            L.append(f"| {WL_LABEL[wl]} | {LABELS[k]} | {c[0]:,} | {c[1]:,} | {c[2]:,} | "
                     f"{cell} |")
    if "lightcurve" in res["reference"]:
        lr = res["reference"]["lightcurve"]
        for k in order:
            x = sysres[k].get("lightcurve")
            if not x:
                continue
            if x.get("status") != "ok":
                L.append(f"| light curves | {LABELS[k]} | | | | **FAILED** |")
                all_ok = False
                continue
            nm = len(x["count_mismatches"])
            all_ok &= nm == 0 and x["value_mismatches"] == 0
            L.append(f"| light curves | {LABELS[k]} | {x['rows_total']:,} rows "
                     f"(reference {sum(lr['counts']):,}) | | | "
                     + ("every row count and mjd list = reference" if nm == 0 and
                        x["value_mismatches"] == 0 else
                        f"**{nm} row-count and {x['value_mismatches']} mjd-list mismatches of "
                        f"{len(lr['counts'])}**") + " |")
    L.append("")
    L.append(("Every system that answered agrees with the reference." if all_ok else
              "**MISMATCHES OR FAILURES: see the table above and the raw JSON; the time of a "
              "wrong answer does not count.**") + "\n")

    # timings
    L.append("## Timings\n")
    L.append(f"Wall time of the join query on the server side as the client sees it (one "
             f"connection; only three numbers come back), {args.repeats} timed runs after one "
             "warm-up. Ratio: median time relative to PostgreSQL + q3c's median (below 1: "
             "faster than q3c).\n")
    L.append("| workload | system | min (s) | median (s) | vs q3c | runs |")
    L.append("|---|---|---|---|---|---|")
    for wl in ("self", "xmatch"):
        q3 = sysres.get("q3c", {}).get(wl, {})
        q3m = q3.get("median_s") if q3.get("status") == "ok" else None
        for k in order:
            x = sysres[k].get(wl)
            if x is None:
                continue
            if x["status"] != "ok":
                st = x["status"] + (f" ({x['timeout_at']}, {args.timeout:g} s)"
                                    if x["status"] == "timeout" else "")
                L.append(f"| {WL_LABEL[wl]} | {LABELS[k]} | {st} | | | |")
                continue
            rt = ("1.00x" if k == "q3c" else
                  (f"{LABELS[k]} {ratio(x['median_s'], q3m)} of q3c's time"
                   if q3m else "n/a (no q3c time)"))
            flag = " (WRONG ANSWER)" if x.get("verdict") == "mismatch" else ""
            L.append(f"| {WL_LABEL[wl]} | {LABELS[k]} | {f_s(x['min_s'])} | "
                     f"{f_s(x['median_s'])}{flag} | {rt} | "
                     + ", ".join(f"{r['seconds']:.2f}" for r in x["runs"][1:]) +
                     f" (warm-up {x['runs'][0]['seconds']:.2f}) |")
    L.append("")
    if any("lightcurve" in sysres[k] for k in order):
        L.append(f"Light curves ({args.lc_lookups} lookups, ms, including the fetch):\n")
        L.append("| system | p50 (ms) | p95 (ms) | mean (ms) | max (ms) | p50 vs q3c |")
        L.append("|---|---|---|---|---|---|")
        q3 = sysres.get("q3c", {}).get("lightcurve", {})
        q3p = q3.get("p50_ms") if q3.get("status") == "ok" else None
        for k in order:
            x = sysres[k].get("lightcurve")
            if not x:
                continue
            if x.get("status") != "ok":
                L.append(f"| {LABELS[k]} | FAILED | | | | |")
                continue
            L.append(f"| {LABELS[k]} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} | "
                     f"{x['mean_ms']:.2f} | {x['max_ms']:.2f} | "
                     + ("1.00x" if k == "q3c" else ratio(x["p50_ms"], q3p)) + " |")
        L.append("")

    # plans
    L.append("## Plans\n")
    alm = sysres.get("almagest", {})
    for wl in ("self", "xmatch"):
        x = alm.get(wl)
        if not x:
            continue
        s = x.get("plan_summary", {})
        L.append(f"Almagest, {WL_LABEL[wl]}: chunk-local join: "
                 f"**{'yes' if s.get('chunk_local') else 'NO'}**. EXPLAIN (FragmentExec line, "
                 "the fragment SQL elided):\n")
        L.append("```\n" + "\n".join(s.get("fragment_lines") or ["(none)"]) + "\n```\n")
        L.append("<details><summary>full EXPLAIN</summary>\n\n```\n" + x.get("plan", "")
                 + "\n```\n</details>\n")
    if alm.get("lightcurve", {}).get("plan"):
        fr = almagest_plan_summary(alm["lightcurve"]["plan"])["fragment_lines"]
        L.append("Almagest, light curve: \n\n```\n" + "\n".join(fr or ["(none)"]) + "\n```\n")
    for k in order:
        if k == "almagest":
            continue
        for wl in ("self", "xmatch"):
            x = sysres[k].get(wl)
            if x and x.get("plan_nodes"):
                L.append(f"- {LABELS[k]}, {WL_LABEL[wl]}: " + " > ".join(x["plan_nodes"]))
    L.append("")
    L.append("## Not included\n")
    L.append("LSDB (with hats-import to build the HATS catalogs) was not included: converting "
             "both catalogs to HATS and setting up the Dask cluster is a separate "
             "pipeline that did not fit the time available for this harness.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L))


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-self", type=int, default=1_000_000)
    ap.add_argument("--rows-xmatch", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=5, help="almagest gen --epochs (detections)")
    ap.add_argument("--self-radius", type=float, default=5.0, help="arcsec")
    ap.add_argument("--xmatch-radius", type=float, default=1.0, help="arcsec")
    ap.add_argument("--workdir", default=DEFAULT_WORKDIR)
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks-joins.md"),
                    help="Markdown report ('-' for none)")
    ap.add_argument("--json", default=None, help="raw results (default WORKDIR/joins-results.json)")
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                    help="comma list of " + ",".join(ALL_SYSTEMS) + " (run in this order)")
    ap.add_argument("--almagest-bin", default=None,
                    help="almagest binary, also used for `almagest gen` (default: $ALMAGEST_BIN, "
                         "else $CARGO_TARGET_DIR/{release,debug}/almagest)")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per join query")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per join (after 1 warm-up)")
    ap.add_argument("--skip-self", action="store_true")
    ap.add_argument("--skip-xmatch", action="store_true")
    ap.add_argument("--skip-lightcurve", action="store_true")
    ap.add_argument("--lc-lookups", type=int, default=200)
    ap.add_argument("--lc-warmup", type=int, default=20)
    ap.add_argument("--pg-bindir", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--almagest-workers", type=int, default=2)
    ap.add_argument("--almagest-chunk-depth", type=int, default=3,
                    help="--chunk-depth of the load that creates the database (server default 3)")
    ap.add_argument("--almagest-overlap-arcmin", type=float, default=1.0,
                    help="--overlap-arcmin of the load that creates the database (default 1)")
    ap.add_argument("--almagest-grpc-port", type=int, default=50051,
                    help="coordinator gRPC port if standalone had no --grpc-port flag")
    ap.add_argument("--almagest-start-timeout", type=float, default=120.0)
    ap.add_argument("--almagest-standalone-arg", action="append", default=[])
    ap.add_argument("--almagest-load-arg", action="append", default=[])
    ap.add_argument("--idle-wait", type=float, default=300.0,
                    help="after an Almagest timeout, wait up to this long for it to go idle")
    ap.add_argument("--keep", action="store_true", help="keep the database files")
    ap.add_argument("--note", action="append", default=[], help="free text for the report")
    args = ap.parse_args(argv)
    args.systems_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in args.systems_list if s not in ALL_SYSTEMS]
    if bad:
        ap.error(f"unknown systems {bad}; choose from {ALL_SYSTEMS}")
    if args.skip_self and args.skip_xmatch and args.skip_lightcurve:
        ap.error("every workload skipped")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    ctx = Ctx(args)
    res = ctx.results
    import duckdb
    import psycopg
    res.update({"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "argv": sys.argv[1:] if argv is None else argv,
                "machine": machine_info(), "systems_order": args.systems_list,
                "versions": {"psycopg": psycopg.__version__, "duckdb": duckdb.__version__,
                             "pyarrow": pa.__version__, "numpy": np.__version__},
                "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
                "notes": list(args.note), "almagest_bin": str(ctx.almagest_bin)})
    if args.almagest_bin is None and ctx.almagest_bin is not None:
        res["argv"] = [*res["argv"], "--almagest-bin", str(ctx.almagest_bin)]
    res["command"] = rerun_command(res["argv"])
    log(f"machine: {res['machine']}, load average {res['loadavg_start']}")
    log(f"almagest binary: {ctx.almagest_bin or 'none found'}")
    if "almagest" in args.systems_list and ctx.almagest_bin is None:
        raise SystemExit("almagest selected but no binary found (--almagest-bin)")

    def cleanup():
        if ctx._pg is not None:
            ctx._pg.stop()
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        return _main(ctx, args, res)
    finally:
        cleanup()


def _main(ctx: Ctx, args, res: dict) -> int:
    T = ctx.tables
    # ---- data
    if T.self_cat:
        ctx.sets["self"] = Dataset("self", ctx.workdir, args.rows_self, args.seed,
                                   {"--detections": "det", "--epochs": str(args.epochs)})
    if T.xmatch:
        ctx.sets["xmatch"] = Dataset("xmatch", ctx.workdir, args.rows_xmatch, args.seed,
                                     {"--counterparts": "cp"})
    for ds in ctx.sets.values():
        ds.ensure(ctx.almagest_bin)
        for p in ds.files.values():
            os.chmod(p, 0o644)
    if any(s in args.systems_list for s in ("q3c", "pgsphere")):
        for ds in ctx.sets.values():
            for k in ds.files:
                if k != "det" or ("q3c" in args.systems_list and T.det):
                    ds.csv(k)
    res["data"] = {n: ds.info() for n, ds in ctx.sets.items()}
    ctx.expected_rows = {}
    if T.self_cat:
        ctx.expected_rows["scat"] = res["data"]["self"]["files"]["main"]["rows"]
    if T.det:
        ctx.expected_rows["det"] = res["data"]["self"]["files"]["det"]["rows"]
    if T.xmatch:
        ctx.expected_rows["xcat"] = res["data"]["xmatch"]["files"]["main"]["rows"]
        ctx.expected_rows["xcp"] = res["data"]["xmatch"]["files"]["cp"]["rows"]

    # ---- reference
    refs: dict = {}
    res["reference"] = {}
    if T.self_cat:
        scat = _positions(ctx.sets["self"].main, "source_id")
    if not args.skip_self:
        with Step(f"reference: self-match {args.rows_self:,} rows, r={args.self_radius:g} "
                  "arcsec (numpy)") as s:
            refs["self"] = pair_reference(scat, scat, args.self_radius / 3600.0, True)
        res["reference"]["self"] = ref_summary(refs["self"], args.self_radius, s.seconds)
        log(f"   {res['reference']['self']['count']:,} pairs, "
            f"{res['reference']['self']['ambiguous']} within 1e-9 relative of r")
    if not args.skip_xmatch:
        xa = _positions(ctx.sets["xmatch"].main, "source_id")
        xb = _positions(ctx.sets["xmatch"].files["cp"], "obj_id")
        with Step(f"reference: cross-match {len(xa['id']):,} x {len(xb['id']):,} rows, "
                  f"r={args.xmatch_radius:g} arcsec (numpy)") as s:
            refs["xmatch"] = pair_reference(xa, xb, args.xmatch_radius / 3600.0, False)
        del xa, xb
        res["reference"]["xmatch"] = ref_summary(refs["xmatch"], args.xmatch_radius, s.seconds)
        log(f"   {res['reference']['xmatch']['count']:,} pairs, "
            f"{res['reference']['xmatch']['ambiguous']} within 1e-9 relative of r")
    if not args.skip_lightcurve:
        with Step("reference: light curves (numpy)") as s:
            refs["lightcurve"] = lightcurve_reference(ctx.sets["self"].files["det"], scat["id"],
                                                      args.lc_lookups, args.lc_warmup, args.seed)
        lr = refs["lightcurve"]
        res["reference"]["lightcurve"] = {
            "ids": lr["ids"], "counts": lr["counts"], "warm_ids": lr["warm_ids"],
            "det_rows": lr["det_rows"], "seconds": s.seconds,
            "sources_with_detections": lr["sources_with_detections"]}
        log(f"   {len(lr['ids'])} source_ids, {sum(lr['counts']):,} detections in all")

    # ---- systems, one at a time
    res["systems"] = {}
    pg_keys = [k for k in args.systems_list if k in ("q3c", "pgsphere")]
    for key in args.systems_list:
        log(f"===== {LABELS[key]} =====")
        res["systems"][key] = run_system(key, ctx, refs)
        if key in pg_keys and key == pg_keys[-1] and ctx._pg is not None:
            ctx._pg.stop()
    if ctx._pg is not None:
        ctx._pg.stop()
        if not args.keep:
            shutil.rmtree(ctx.workdir / "pg", ignore_errors=True)

    # ---- outputs
    res["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    json_path = Path(args.json) if args.json else ctx.workdir / "joins-results.json"
    res["json_path"] = str(json_path)
    json_path.write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {json_path}")
    if args.out != "-":
        write_report(Path(args.out), ctx, res)
        log(f"wrote {args.out}")
    return summary(res, args)


def ref_summary(ref: dict, r_as: float, seconds: float) -> dict:
    e = expected(ref, ref["r_rad"])
    p = expected(ref, ref["r_rad"] + PGSPHERE_EPS)
    return {"r_arcsec": r_as, "count": e["count"], "sum_b": e["sum_b"], "sum_a": e["sum_a"],
            "ambiguous": len(e["ambiguous"]), "ambiguous_pairs": e["ambiguous"],
            "pgsphere": {"count": p["count"], "sum_b": p["sum_b"], "sum_a": p["sum_a"],
                         "ambiguous": len(p["ambiguous"])},
            "candidates": ref["candidates"], "seconds": seconds}


def summary(res: dict, args) -> int:
    problems = []
    print("\nworkload      system      min s    median s   checksums (count, sum_b, sum_a)   verdict")
    for wl in ("self", "xmatch"):
        if wl in res["reference"]:
            r = res["reference"][wl]
            print(f"{WL_LABEL[wl]:<13} reference   {'':8} {'':10} "
                  f"({r['count']}, {r['sum_b']}, {r['sum_a']})   {r['ambiguous']} coin-toss pairs")
        for k, s in res["systems"].items():
            x = s.get(wl)
            if x is None:
                continue
            c = x.get("checksums")
            print(f"{WL_LABEL[wl]:<13} {k:<10} {f_s(x.get('min_s')):>8} "
                  f"{f_s(x.get('median_s')):>10}   {tuple(c) if c else '-'}   "
                  f"{x.get('verdict', x['status'])}"
                  + (f" ({x['status']})" if x["status"] != "ok" else ""))
            if x.get("verdict") == "mismatch":
                problems.append(f"{k}: {WL_LABEL[wl]} checksums differ: {x['detail']}")
            if x["status"] == "error":
                problems.append(f"{k}: {WL_LABEL[wl]} failed: {x.get('error', '')[:300]}")
    for k, s in res["systems"].items():
        if "error" in s:
            problems.append(f"{k}: {s['error'].splitlines()[0]}")
        x = s.get("lightcurve")
        if x:
            if x.get("status") != "ok":
                problems.append(f"{k}: light curves failed: {x.get('error')}")
            else:
                print(f"light curves  {k:<10} p50 {x['p50_ms']:.2f} ms  p95 {x['p95_ms']:.2f} ms  "
                      f"{len(x['count_mismatches'])} count / {x['value_mismatches']} mjd "
                      "mismatches")
                if x["count_mismatches"] or x["value_mismatches"]:
                    problems.append(f"{k}: light-curve mismatches")
        for role, (n, e) in s.get("count_mismatch", {}).items():
            problems.append(f"{k}: table {role} holds {n:,} rows, the file {e:,}")
    if problems:
        loud("PROBLEMS:\n" + "\n".join(problems))
        return 1
    log("every system agrees with the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
