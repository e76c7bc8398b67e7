"""psycopg (extended query protocol, typed parameters) against a running Almagest.

Prints one JSON document with what it read; the Rust test compares it with the
brute-force reference."""
import json
import sys

import psycopg

port = int(sys.argv[1])
out = {}
with psycopg.connect(host="127.0.0.1", port=port, user="almagest", dbname="almagest", autocommit=True) as conn:
    cur = conn.execute(
        "SELECT source_id FROM test.gaia WHERE scisql_s2PtInCircle(ra, dec, %s, %s, %s) = 1",
        (266.4, -28.9, 0.5),
    )
    out["cone"] = sorted(r[0] for r in cur.fetchall())
    cur = conn.execute("SELECT COUNT(*) FROM test.gaia WHERE phot_g_mean_mag < %s", (15.0,))
    out["bright"] = cur.fetchone()[0]
    cur = conn.execute("SELECT source_id, ra, dec FROM test.gaia ORDER BY source_id LIMIT %s", (3,))
    out["first"] = [[r[0], r[1], r[2]] for r in cur.fetchall()]
    try:
        conn.execute("SELECT * FROM test.nope")
        out["error"] = None
    except psycopg.Error as e:
        out["error"] = e.sqlstate
    cur = conn.execute("SELECT 1 + %s", (41,))
    out["after_error"] = cur.fetchone()[0]
print(json.dumps(out))
