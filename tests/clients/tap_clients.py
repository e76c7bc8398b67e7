"""pyvo and astroquery against a running Almagest TAP service.

Usage: tap_clients.py TAP_URL UPLOAD_CSV URL_UPLOAD_ROWS

The service must fetch uploads by URL (`almagest standalone --allow-http-upload`): the
first URL_UPLOAD_ROWS targets are also served as a VOTable by a web server this script
starts on a free loopback port, and uploaded by URL.

Prints one JSON document with what each client read; the Rust test (t90_tap_clients)
compares it with the brute-force reference. Every step records its own outcome, so one
failing step does not hide the others.
"""
import contextlib
import functools
import http.server
import json
import os
import sys
import tempfile
import threading
import traceback

import pyvo
from astropy.table import Table

url, upload_csv, url_upload_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
    "SELECT u.pos_id, g.source_id FROM TAP_UPLOAD.targets AS u JOIN test.gaia AS g "
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


def upload_by_url():
    """The cross-match with the targets fetched by the service from a URL, and the error
    for a URL that answers 404."""
    targets = Table.read(upload_csv, format="ascii.csv")[:url_upload_rows]
    with tempfile.TemporaryDirectory() as tmp:
        targets.write(os.path.join(tmp, "targets.xml"), format="votable")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = "http://127.0.0.1:%d" % server.server_address[1]
            result = service.run_sync(
                XMATCH, uploads={"targets": base + "/targets.xml"}).to_table()
            pairs = sorted([int(a), int(b)]
                           for a, b in zip(result["pos_id"], result["source_id"]))
            try:
                service.run_sync(XMATCH, uploads={"targets": base + "/missing.xml"})
                missing = None
            except pyvo.dal.DALQueryError as e:
                missing = str(e)
        finally:
            server.shutdown()
            server.server_close()
    return {"pairs": pairs, "missing": missing}


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
    step("upload_by_url", upload_by_url)
    step("overflow", overflow)
    step("error", error)
    step("astroquery", astroquery_sync_async)
print(json.dumps(out))
