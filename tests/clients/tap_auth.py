"""pyvo with credentials against an Almagest TAP service that refuses anonymous requests.

Usage: tap_auth.py TAP_URL USER PASSWORD OTHER_USER OTHER_PASSWORD TOKEN

USER signs in with HTTP Basic (a requests.Session with auth, as pyvo documents), runs a
synchronous query and an asynchronous job; OTHER_USER then tries to read that job; TOKEN
(a bearer token of USER) lists USER's jobs. Prints one JSON document of what happened; the
Rust test (t36) checks it. Every step records its own outcome.
"""
import json
import sys
import traceback

import pyvo
import requests

url, user, password, other, other_password, token = sys.argv[1:7]
out = {}

QUERY = "SELECT table_name FROM TAP_SCHEMA.tables ORDER BY table_name"


def session(auth=None, bearer=None):
    s = requests.Session()
    if auth:
        s.auth = auth
    if bearer:
        s.headers["Authorization"] = f"Bearer {bearer}"
    return s


def step(name, fn):
    try:
        out[name] = fn()
    except Exception as e:  # noqa: BLE001 - the test reads what failed
        out[name] = {"raised": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}


def status_of(s, path):
    return s.get(url + path).status_code


mine = session(auth=(user, password))
theirs = session(auth=(other, other_password))

step("anonymous_sync_status", lambda: status_of(session(), "/sync?LANG=ADQL&QUERY=" + QUERY))
step("wrong_password_status", lambda: status_of(session(auth=(user, "wrong")), "/tables"))


def sync():
    svc = pyvo.dal.TAPService(url, session=mine)
    return [str(v) for v in svc.run_sync(QUERY).to_table()["table_name"]]


step("sync", sync)


def async_job():
    svc = pyvo.dal.TAPService(url, session=mine)
    job = svc.submit_job(QUERY)
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
    out["job_url"] = job.url
    out["job_owner"] = job.owner
    return [str(v) for v in job.fetch_result().to_table()["table_name"]]


step("async", async_job)


def other_reads():
    job_url = out["job_url"]
    return {
        "job": theirs.get(job_url).status_code,
        "result": theirs.get(job_url + "/results/result").status_code,
        "listed": job_url.rsplit("/", 1)[1] in theirs.get(url + "/async").text,
    }


step("other", other_reads)


def token_list():
    jobs = session(bearer=token).get(url + "/async")
    return {"status": jobs.status_code, "listed": out["job_url"].rsplit("/", 1)[1] in jobs.text}


step("token", token_list)

print(json.dumps(out))
