"""Access statistics (per session and layer) and the ``kvfleet stats`` CLI (file, URL, demo)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kvpool import SessionId, Tier, UnknownHandleError
from kvpool.stats_cli import main
from kvpool.stats_report import heatmap_matrix

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def busy_pool(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=entry_bytes, disk=2 * entry_bytes)
    ragged = make_kv(ragged=True, ratio=0.5, layer_compression_ratios=[0.0, 0.25, 0.5, 0.75])
    a = pool.put(make_kv(seed=1), SessionId("a"))
    b = pool.put(ragged, SessionId("b"))
    for _ in range(3):
        pool.get(a)
    pool.get(b)
    return pool, a, b, ragged


def test_snapshot_counts_bytes_and_hits_per_session_and_layer(make_pool, make_kv, entry_bytes):
    pool, a, b, ragged = busy_pool(make_pool, make_kv, entry_bytes)
    with pytest.raises(UnknownHandleError):
        pool.get(type(a)("missing"))
    snapshot = json.loads(json.dumps(pool.stats_snapshot()))  # JSON-able
    session_a, session_b = snapshot["sessions"]["a"], snapshot["sessions"]["b"]
    assert (session_a["bytes"], session_a["hits"], session_a["entries"]) == (entry_bytes, 3, 1)
    assert [layer["bytes"] for layer in session_b["layers"]] == [layer.nbytes() for layer in ragged.layers]
    assert [layer["hits"] for layer in session_a["layers"]] == [3, 3, 3, 3]
    assert session_a["last_access_s"] > 0 and session_a["series"][-1][1:] == [entry_bytes, 3]
    assert snapshot["totals"]["hits"] == 4 and snapshot["totals"]["misses_unknown"] == 1
    assert snapshot["hit_rate"] == pytest.approx(0.8)
    usage = pool.usage()
    assert snapshot["tiers"] == usage
    assert {tier.value: n for tier, n in pool.stats.tier_bytes().items()} == {
        name: tier_usage["held_bytes"] for name, tier_usage in usage.items()}
    pool.free(a)
    assert pool.stats_snapshot()["sessions"]["a"]["bytes"] == 0


def test_heatmap_matrix_shapes(make_pool, make_kv, entry_bytes):
    pool, *_ = busy_pool(make_pool, make_kv, entry_bytes)
    labels, rows = heatmap_matrix(pool.stats_snapshot(), "hits")
    assert labels == ["a", "b"] and rows == [[3.0] * 4, [1.0] * 4]
    with pytest.raises(ValueError, match="bytes, hits"):
        heatmap_matrix(pool.stats_snapshot(), "latency")


def test_cli_reads_a_dump_file(make_pool, make_kv, entry_bytes, tmp_path, capsys):
    pool, *_ = busy_pool(make_pool, make_kv, entry_bytes)
    dump = tmp_path / "stats.json"
    dump.write_text(json.dumps(pool.stats_snapshot()))
    out = tmp_path / "heat.png"
    assert main([str(dump), "--out", str(out), "--metric", "hits"]) == 0
    printed = capsys.readouterr().out
    assert "hit rate 100.0%" in printed and "session" in printed and "\na " in printed
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_cli_reads_a_url(make_pool, make_kv, entry_bytes, tmp_path, capsys):
    pool, *_ = busy_pool(make_pool, make_kv, entry_bytes)
    body = json.dumps(pool.stats_snapshot()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/admin/stats"
        assert main([url, "--out", str(tmp_path / "u.png"), "--timeout-s", "5"]) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert "host:" in capsys.readouterr().out and (tmp_path / "u.png").exists()


def test_cli_demo_runs_a_real_pool(tmp_path, capsys):
    dump = tmp_path / "demo.json"
    assert main(["--demo", "--dump", str(dump), "--out", str(tmp_path / "demo.png")]) == 0
    snapshot = json.loads(dump.read_text())
    assert len(snapshot["sessions"]) == 16 and snapshot["totals"]["stored"] == 16
    assert snapshot["totals"]["hits"] > 0 and set(snapshot["tiers"]) == {Tier.HOST.value, Tier.DISK.value}
    assert (tmp_path / "demo.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "session-00" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["--demo", "x.json"], ["/no/such/file.json"],
                                  ["http://127.0.0.1:9/stats", "--timeout-s", "2"]])
def test_cli_bad_input_exits_2_with_a_message(argv, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "x.png")]) == 2
    assert "kvfleet stats:" in capsys.readouterr().err


def test_cli_rejects_json_that_is_not_a_snapshot(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"sessions": 3}))
    assert main([str(path)]) == 2
    assert "not a version-1" in capsys.readouterr().err
