"""pyvo and astroquery against a running Almagest TAP service.

Usage: tap_clients.py TAP_URL UPLOAD_CSV

Prints one JSON document with what each client read; the Rust test (t90_tap_clients)
compares it with the brute-force reference. Every step records its own outcome, so one
failing step does not hide the others.
"""
import contextlib
import json
import sys
import traceback

import pyvo
from astropy.table import Table

url, upload_csv = sys.argv[1], sys.argv[2]
out = {}

CONE = (
    "SELECT source_id FROM test.gaia "
    "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 266.4, -28.9, 0.5))"
)
# Across RA 0 and close to the north pole.
CONE_WRAP = (
    "SELECT source_id FROM test.gaia "
    "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0.2, 1.0, 2.0))"
)
CONE_POLE = (
    "SELECT source_id FROM test.gaia "
    "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 89.5, 1.0))"
)
XMATCH = (
    "SELECT u.pos_id, g.source_id FROM TAP_UPLOAD.targets AS u JOIN test.xm AS g "
    "ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', u.ra, u.dec, 2.0/3600))"
)


def ids(table, column="source_id"):
    return sorted(int(x) for x in table[column])


def step(name, fn):
    try:
        out[name] = fn()
    except Exception as e:  # recorded for the Rust side to report
        out[name] = {"exception": type(e).__name__, "message": str(e),
                     "trace": traceback.format_exc()}


service = pyvo.dal.TAPService(url)


def tables():
    names = sorted(t.name for t in service.tables)
    gaia = service.tables["test.gaia"]
    return {"names": names, "gaia_columns": sorted(c.name for c in gaia.columns)}


def run_sync():
    return ids(service.run_sync(CONE).to_table())


def run_async():
    return ids(service.run_async(CONE_WRAP).to_table())


def job_cycle():
    job = service.submit_job(CONE_POLE)
    phases = [job.phase]
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=120)
    phases.append(job.phase)
    result = ids(job.fetch_result().to_table())
    job.delete()
    try:
        job.phase
        gone = False
    except Exception:
        gone = True
    return {"phases": phases, "ids": result, "deleted": gone}


def upload():
    targets = Table.read(upload_csv, format="ascii.csv")
    result = service.run_async(XMATCH, uploads={"targets": targets}).to_table()
    return sorted([int(a), int(b)] for a, b in zip(result["pos_id"], result["source_id"]))


def overflow():
    # pyvo (>= 1.6) does not warn when the truncation is the one the caller asked for, so
    # read the status the service reported.
    result = service.run_sync("SELECT source_id FROM test.gaia", maxrec=10)
    return {"rows": len(result), "status": result.status[0]}


def error():
    try:
        service.run_sync("SELECT nope FROM test.gaia")
    except pyvo.dal.DALQueryError as e:
        return {"class": "DALQueryError", "message": str(e)}
    return {"class": None}


def astroquery_sync_async():
    from astroquery.utils.tap.core import TapPlus

    tap = TapPlus(url=url, verbose=False)
    sync = ids(tap.launch_job(CONE).get_results())
    job = tap.launch_job_async(CONE_WRAP)
    return {"sync": sync, "async": ids(job.get_results())}


# The clients print progress (astroquery's "INFO: Query finished.") to stdout: keep stdout
# for the JSON document alone.
with contextlib.redirect_stdout(sys.stderr):
    step("tables", tables)
    step("run_sync", run_sync)
    step("run_async", run_async)
    step("job_cycle", job_cycle)
    step("upload", upload)
    step("overflow", overflow)
    step("error", error)
    step("astroquery", astroquery_sync_async)
print(json.dumps(out))
