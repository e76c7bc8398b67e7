"""Cross-match workload of bench/run.py: targets, the exact reference, pair comparison,
request bodies and the report section.

N targets (seed 44 by default): the first half are catalog positions moved by a random
offset of 0-2 arcsec in a random direction (so most of them match at r = 10 arcsec and
about half at r = 1 arcsec), the second half uniform on the sphere. Every system must
return exactly the set of (target id, catalog source_id) pairs whose angular distance is
at most r; the reference is computed here with numpy (float64 haversine over a dec band
of the dec-sorted catalog).
"""
from __future__ import annotations

import io
import math
import os
import re
import shlex
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BEGIN = "<!-- bench/run.py cross-match section: begin (generated; --xmatch-only rewrites it) -->"
END = "<!-- bench/run.py cross-match section: end -->"
NEAR_MAX_ARCSEC = 2.0
# pgsphere's fixed comparison tolerance (EPSILON in pgsphere.h; FPle(a, b) is a <= b + EPSILON)
PGSPHERE_EPSILON_RAD = 1e-9


def haversine_rad(ra1, dec1, ra2, dec2):
    """Angular distance in radians; inputs in degrees."""
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.minimum(1.0, a)))


class Catalog:
    """The catalog's positions sorted by dec (rows with a NULL position dropped)."""

    def __init__(self, parquet: Path):
        t = pq.read_table(parquet, columns=["source_id", "ra", "dec"])
        sid = t.column("source_id").to_numpy(zero_copy_only=False).astype(np.int64)
        ra = t.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
        dec = t.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
        ok = ~(np.isnan(ra) | np.isnan(dec))
        order = np.argsort(dec[ok], kind="stable")
        self.sid = sid[ok][order]
        self.ra = ra[ok][order]
        self.dec = dec[ok][order]

    def position_of(self, source_ids) -> dict[int, tuple[float, float]]:
        ids = np.asarray(list(source_ids), dtype=np.int64)
        idx = np.nonzero(np.isin(self.sid, ids))[0]
        return {int(self.sid[i]): (float(self.ra[i]), float(self.dec[i])) for i in idx}


class Targets:
    def __init__(self, tid: np.ndarray, ra: np.ndarray, dec: np.ndarray, near: int):
        self.tid, self.ra, self.dec, self.near = tid, ra, dec, near
        self._votable: bytes | None = None

    def __len__(self) -> int:
        return len(self.tid)

    def arrow(self) -> pa.Table:
        return pa.table({"tid": pa.array(self.tid), "ra": pa.array(self.ra),
                         "dec": pa.array(self.dec)})

    def copy_text(self) -> str:
        """Tab-separated text for PostgreSQL's COPY; floats as shortest round-trip text."""
        return "".join(f"{int(i)}\t{float(r)!r}\t{float(d)!r}\n"
                       for i, r, d in zip(self.tid, self.ra, self.dec))

    def votable(self) -> bytes:
        """A VOTable 1.4 TABLEDATA document with columns tid (long), ra, dec (double)."""
        if self._votable is None:
            out = io.StringIO()
            out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                      '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
                      '<RESOURCE type="results">\n<TABLE name="t">\n'
                      '<FIELD name="tid" datatype="long" ucd="meta.id"/>\n'
                      '<FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra"/>\n'
                      '<FIELD name="dec" datatype="double" unit="deg" ucd="pos.eq.dec"/>\n'
                      '<DATA><TABLEDATA>\n')
            for i, r, d in zip(self.tid, self.ra, self.dec):
                out.write(f"<TR><TD>{int(i)}</TD><TD>{float(r)!r}</TD><TD>{float(d)!r}</TD></TR>\n")
            out.write("</TABLEDATA></DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n")
            self._votable = out.getvalue().encode()
        return self._votable


def make_targets(cat: Catalog, n: int, seed: int) -> Targets:
    """n targets: the first n//2 near catalog rows (offset 0-2 arcsec), the rest uniform."""
    rng = np.random.default_rng(seed)
    near = n // 2
    pick = rng.integers(0, len(cat.dec), near)
    ra0, dec0 = np.radians(cat.ra[pick]), np.radians(cat.dec[pick])
    rho = np.radians(rng.uniform(0.0, NEAR_MAX_ARCSEC, near) / 3600.0)
    phi = rng.uniform(0.0, 2 * math.pi, near)
    # destination point at angular distance rho, position angle phi
    sd = np.sin(dec0) * np.cos(rho) + np.cos(dec0) * np.sin(rho) * np.cos(phi)
    dec1 = np.arcsin(np.clip(sd, -1.0, 1.0))
    ra1 = ra0 + np.arctan2(np.sin(phi) * np.sin(rho) * np.cos(dec0),
                           np.cos(rho) - np.sin(dec0) * sd)
    ra_near = np.mod(np.degrees(ra1), 360.0)
    ra_near[ra_near >= 360.0] = 0.0
    far = n - near
    ra_far = rng.uniform(0.0, 360.0, far)
    dec_far = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, far)))
    ra = np.concatenate([ra_near, ra_far])
    dec = np.concatenate([np.degrees(dec1), dec_far])
    return Targets(np.arange(n, dtype=np.int64), ra, dec, near)


def reference_pairs(cat: Catalog, tg: Targets, r_deg: float) -> set[tuple[int, int]]:
    """All (tid, source_id) with haversine distance <= r (float64, radians)."""
    r_rad = math.radians(r_deg)
    margin = r_deg + 1e-9
    lo = np.searchsorted(cat.dec, tg.dec - margin, side="left")
    hi = np.searchsorted(cat.dec, tg.dec + margin, side="right")
    out: set[tuple[int, int]] = set()
    for i in range(len(tg)):
        a, b = int(lo[i]), int(hi[i])
        if b <= a:
            continue
        d = haversine_rad(tg.ra[i], tg.dec[i], cat.ra[a:b], cat.dec[a:b])
        for s in cat.sid[a:b][d <= r_rad]:
            out.add((int(tg.tid[i]), int(s)))
    return out


def compare(got: list[tuple[int, int]], ref: set[tuple[int, int]], cat: Catalog,
            tg: Targets, r_deg: float, tol_rad: float = 0.0) -> dict:
    """Multiset comparison with the reference. A mismatched pair whose distance is within
    tol_rad of r (a system's documented comparison tolerance) is counted apart and does not
    make the result wrong; every other mismatch and every duplicate does. Mismatched pairs
    are listed with their distance minus r (arcsec)."""
    counts = Counter(got)
    dups = sum(c - 1 for c in counts.values() if c > 1)
    gs = set(counts)
    missing = sorted(ref - gs)
    extra = sorted(gs - ref)
    detail = []
    tolerated = 0
    mism = [("missing", p) for p in missing] + [("extra", p) for p in extra]
    if mism:
        pos = cat.position_of({s for _, (_, s) in mism[:100_000]})
        r_rad = math.radians(r_deg)
        for kind, (t, s) in mism[:100_000]:
            p = pos.get(s)
            d = None
            if p is not None and 0 <= t < len(tg):
                d = float(haversine_rad(tg.ra[t], tg.dec[t], p[0], p[1]))
            within = d is not None and (d <= r_rad + tol_rad if kind == "extra"
                                        else d >= r_rad - tol_rad)
            within = within and tol_rad > 0
            tolerated += within
            if len(detail) < 50:
                detail.append({"kind": kind, "tid": t, "source_id": s,
                               "distance_minus_r_arcsec": None if d is None
                               else math.degrees(d - r_rad) * 3600.0,
                               "within_tolerance": within})
    return {"returned": len(got), "unique": len(gs), "duplicates": dups,
            "missing": len(missing), "extra": len(extra), "within_tolerance": tolerated,
            "tolerance_rad": tol_rad, "detail": detail,
            "correct": dups == 0 and tolerated == len(missing) + len(extra)}


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = "bench-" + uuid.uuid4().hex
    b = io.BytesIO()
    for k, v in fields.items():
        b.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode())
        b.write(v.encode())
        b.write(b"\r\n")
    for k, (fname, data, ctype) in files.items():
        b.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; '
                f'filename="{fname}"\r\nContent-Type: {ctype}\r\n\r\n'.encode())
        b.write(data)
        b.write(b"\r\n")
    b.write(f"--{boundary}--\r\n".encode())
    return b.getvalue(), f"multipart/form-data; boundary={boundary}"


def parse_pairs_csv(text: str) -> list[tuple[int, int]]:
    lines = text.splitlines()
    if not lines:
        raise RuntimeError("empty CSV response")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if header != ["tid", "source_id"]:
        raise RuntimeError(f"unexpected CSV header {lines[0]!r}")
    out = []
    for ln in lines[1:]:
        if ln:
            a, b = ln.split(",")
            out.append((int(a), int(b)))
    return out


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def wait_idle(pid: int, max_s: float, busy_frac: float = 0.05) -> float | None:
    """Waits until the process uses under busy_frac of a core over a second; returns the
    seconds waited, or None if it was still busy after max_s."""
    t0 = time.monotonic()
    prev = proc_cpu_seconds(pid)
    while time.monotonic() - t0 < max_s:
        time.sleep(1.0)
        cur = proc_cpu_seconds(pid)
        if cur is None or prev is None:
            return time.monotonic() - t0
        if cur - prev < busy_frac:
            return time.monotonic() - t0
        prev = cur
    return None


# ----------------------------------------------------------------------------- report

def alabel(r_arcsec: float) -> str:
    return f"{r_arcsec:g}″"


def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def cell_time(x: dict | None, key: str, timeout_s: float) -> str:
    if not x:
        return "n/a"
    if x.get("status") == "timeout":
        return f"timeout (>{timeout_s:g} s)"
    if x.get("status") == "error":
        return "error"
    return _fmt(x.get(key))


def render_section(res: dict, labels: dict[str, str], order: list[str]) -> str:
    """The cross-match section (with its begin/end markers) from results['xmatch']."""
    xm = res["xmatch"]
    radii = xm["radii_arcsec"]
    timeout_s = xm["timeout_s"]
    sysres = res["systems"]
    keys = [k for k in order if k in sysres]
    L = [BEGIN, "## Cross-match\n"]
    L.append(f"Generated by `bench/run.py` on {xm['date']} (`{shlex.join(res['argv'])}`), "
             f"{res['data']['rows']:,} catalog rows (seed {xm['catalog_seed']}, "
             f"`{res['data']['generator']}`).\n")
    m = res["machine"]
    L.append(f"- Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, "
             f"RAM {xm['ram']}; load average at start {' '.join(res['loadavg_start'])}, "
             f"at end {' '.join(res.get('loadavg_end', ['?']))}.")
    L.append(f"- Targets: {xm['targets']:,} (seed {xm['seed']}): {xm['near']:,} are catalog "
             f"positions moved by a random 0-{NEAR_MAX_ARCSEC:g}″ offset in a random direction, "
             f"{xm['targets'] - xm['near']:,} uniform on the sphere. Radii: "
             + ", ".join(alabel(r) for r in radii) + ". Result: every (target id, source_id) "
             "pair within r, fetched into Python.")
    L.append("- Reference: exact float64 haversine in numpy over a dec band of the dec-sorted "
             "catalog; pairs: " + ", ".join(
                 f"r={alabel(r)}: {xm['reference'][str(r)]['pairs']:,} "
                 f"({xm['reference'][str(r)]['targets_matched']:,} targets matched)"
                 for r in radii) + f" (computed in {xm['reference_s']:.1f} s).")
    L.append(f"- Timing: per system and radius one warm-up run, then the median of "
             f"{xm['repeats']} run{'s' if xm['repeats'] != 1 else ''}; per-query timeout "
             f"{timeout_s:g} s.")
    L.append("- Versions: " + "; ".join(f"{labels[k]}: {sysres[k].get('version', 'n/a')}"
                                       for k in keys) + ".")
    L.append("")
    L.append("| system | how |\n|---|---|")
    how = {
        "almagest": "`POST /tap/sync` (LANG=ADQL, RESPONSEFORMAT=csv, MAXREC="
                    f"{xm['maxrec']}) with the targets as a VOTable TABLEDATA upload "
                    "(`UPLOAD=t,param:t`, multipart), `SELECT u.tid, g.source_id FROM "
                    "tap_upload.t AS u JOIN bench.gaia AS g ON CONTAINS(POINT('ICRS', g.ra, "
                    "g.dec), CIRCLE('ICRS', u.ra, u.dec, r)) = 1`; timed: the whole HTTP request "
                    "(upload, planning, join, CSV response); the VOTable is built once beforehand",
        "q3c": "`CREATE TABLE` + `COPY` of the targets + `ANALYZE`, then `SELECT t.tid, "
               "g.source_id FROM xm_targets t JOIN gaia_q3c g ON q3c_join(t.ra, t.dec, g.ra, "
               "g.dec, r)` (the index on `q3c_ang2ipix(g.ra, g.dec)` serves the second pair)",
        "pgsphere": "`CREATE TABLE` (stored `spoint` column) + `COPY` of the targets + "
                    "`ANALYZE`, then `SELECT t.tid, g.source_id FROM xm_targets_sph t JOIN "
                    "gaia_sph g ON g.pos @ scircle(t.pos, radians(r))` (GiST index on g.pos)",
        "duckdb": "`CREATE TEMP TABLE` of the targets from an Arrow table, then a band join "
                  "`g.dec BETWEEN t.dec - r AND t.dec + r` plus the exact haversine test "
                  "(the catalog is sorted by dec)",
    }
    for k in keys:
        L.append(f"| {labels[k]} | {how[k]} |")
    L.append("")
    for k in keys:
        for n in sysres[k].get("xmatch", {}).get("notes", []):
            L.append(f"- {labels[k]}: {n}")
    L.append("")

    # correctness
    L.append("### Correctness (pair sets against the reference)\n")
    L.append("| system | " + " | ".join(f"r={alabel(r)} pairs (reference {xm['reference'][str(r)]['pairs']:,})"
                                       for r in radii) + " | " +
             " | ".join(f"r={alabel(r)} missing / extra / duplicate" for r in radii) + " |")
    L.append("|---|" + "---|" * (2 * len(radii)))
    wrong = incomplete = tolerated = False
    details = []
    for k in keys:
        s = sysres[k]
        x = s.get("xmatch")
        if "error" in s and not x:
            L.append(f"| {labels[k]} | FAILED: {s['error'].splitlines()[0]} |" + " |" * (2 * len(radii) - 1))
            incomplete = True
            continue
        if x is None or "error" in x:
            why = "not run" if x is None else f"FAILED: {x['error'].splitlines()[0]}"
            L.append(f"| {labels[k]} | {why} |" + " |" * (2 * len(radii) - 1))
            incomplete = True
            continue
        c1, c2 = [], []
        for r in radii:
            rr = x["radii"].get(str(r), {})
            cmp_ = rr.get("compare")
            status = rr.get("status", "not run")
            if status != "ok":
                incomplete = True
            if not cmp_:
                c1.append(status)
                c2.append("n/a")
                continue
            bad = not cmp_["correct"]
            wrong |= bad
            tol = cmp_.get("within_tolerance", 0)
            tolerated |= tol > 0
            c1.append(f"{cmp_['returned']:,}" + ("" if status == "ok" else
                                                f" (then {status} at {rr.get('timeout_run', 'the next run')})"))
            t = f"{cmp_['missing']} / {cmp_['extra']} / {cmp_['duplicates']}"
            if tol:
                t += (f" ({tol} within the {cmp_['tolerance_rad']:g} rad tolerance)"
                      if not bad else f" ({tol} within tolerance)")
            c2.append(f"**{t}**" if bad else t)
            if cmp_["detail"] and (bad or tol):
                details.append(f"- {labels[k]}, r={alabel(r)}: " + "; ".join(
                    f"{d['kind']} (tid {d['tid']}, source_id {d['source_id']}) at r"
                    + ("" if d["distance_minus_r_arcsec"] is None
                       else f"{d['distance_minus_r_arcsec']:+.3g}″")
                    + (" (within tolerance)" if d.get("within_tolerance") else "")
                    for d in cmp_["detail"][:6]))
        L.append(f"| {labels[k]} | " + " | ".join(c1 + c2) + " |")
    L.append("")
    if wrong:
        L.append("**MISMATCHES: see the table; the times of a system that returns wrong pairs "
                 "do not count.** Each mismatched pair is listed below with its distance "
                 "relative to r.\n")
    elif incomplete:
        L.append("Every result that came back equals the reference pair set"
                 + (" (up to the tolerance below)" if tolerated else "")
                 + "; some runs did not finish (timeout or failure, see the table).\n")
    else:
        L.append("Every system returned the reference pair set at every radius"
                 + (" (up to the tolerance below)." if tolerated else ", exactly.") + "\n")
    if tolerated or wrong:
        L.append(f"Tolerance: pgsphere compares distances with a fixed epsilon of "
                 f"{PGSPHERE_EPSILON_RAD:g} rad ({math.degrees(PGSPHERE_EPSILON_RAD) * 3600:.1e}″; "
                 "its `EPSILON`; `FPle(a, b)` is `a <= b + EPSILON`), so it also returns pairs up to that much beyond r; "
                 "such pairs are counted apart and listed, and do not count as wrong. Every "
                 "other system is held to the exact float64 result.\n")
    L.extend(details)
    if details:
        L.append("")
    for n in xm.get("notes", []):
        L.append(f"> Note: {n}\n")

    # figures
    L.append("### Figures\n")
    cols = []
    for r in radii:
        cols += [f"r={alabel(r)} total (s)", f"r={alabel(r)} query only (s)"]
    L.append("| system | " + " | ".join(cols) + " |")
    L.append("|---|" + "---|" * len(cols))
    for k in keys:
        x = sysres[k].get("xmatch") or {}
        cells = []
        for r in radii:
            rr = x.get("radii", {}).get(str(r))
            cells.append(cell_time(rr, "total_median_s", timeout_s))
            if k == "almagest":
                cells.append("(one request)")
            else:
                cells.append(cell_time(rr, "query_median_s", timeout_s))
        L.append(f"| {labels[k]} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Total: from sending the targets to having every pair in Python (Almagest: the "
             "HTTP request with the upload; PostgreSQL: CREATE TABLE, COPY, ANALYZE and the "
             "join; DuckDB: the temp table and the join). Query only: the join statement and "
             "fetching its rows.\n")

    # ratios
    L.append("### Ratios Almagest / peer\n")
    ax = sysres.get("almagest", {}).get("xmatch") or {}
    if not ax.get("radii"):
        L.append("Not available: Almagest's cross-match was not measured in this run.\n")
    else:
        L.append("A ratio above 1 means Almagest is slower. Almagest's time is always its "
                 "whole request (upload included).\n")
        if not [k for k in keys if k != "almagest"]:
            L.append("No peer was measured in this run.\n")
        rcols = []
        for r in radii:
            rcols += [f"r={alabel(r)} vs peer total", f"r={alabel(r)} vs peer query only"]
        if [k for k in keys if k != "almagest"]:
            L.append("| peer | " + " | ".join(rcols) + " |")
            L.append("|---|" + "---|" * len(rcols))
        for k in keys:
            if k == "almagest":
                continue
            x = sysres[k].get("xmatch") or {}
            cells = []
            for r in radii:
                a = ax["radii"].get(str(r), {})
                p = x.get("radii", {}).get(str(r), {})
                for pk in ("total_median_s", "query_median_s"):
                    av, pv = a.get("total_median_s"), p.get(pk)
                    if a.get("status") == "timeout" and pv:
                        cells.append(f">{timeout_s / pv:.0f}x")
                    elif (a.get("status") != "ok" or p.get("status") != "ok" or not av or not pv):
                        cells.append("n/a")
                    else:
                        cells.append(f"{av / pv:.2f}x")
            L.append(f"| {labels[k]} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("Rerun only this section (loads every system afresh, then only the cross-match):\n")
    L.append("```\n" + xm["command"] + "\n```\n")
    L.append(END)
    return "\n".join(L)


def merge_section(path: Path, section: str, title: str) -> None:
    """Puts `section` into the markdown file at `path`: replaces an earlier cross-match
    section, else goes before '## Reproduce', else at the end."""
    text = path.read_text() if path.exists() else f"{title}\n"
    pat = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pat.search(text):
        text = pat.sub(lambda _m: section, text, count=1)
    elif "\n## Reproduce" in text:
        i = text.index("\n## Reproduce")
        text = text[:i] + "\n" + section + "\n" + text[i:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def existing_section(path: Path) -> str | None:
    if not path.exists():
        return None
    m = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), path.read_text(), re.S)
    return m.group(0) if m else None
