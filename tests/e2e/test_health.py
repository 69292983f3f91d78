"""sys/health status codes, query overrides, HEAD, body fields; sys/leader; seal-status."""

import time

import custos_harness as H


def health(srv, method="GET", **params):
    return srv.request(method, "sys/health", params=params)


def check_body(body, initialized, sealed):
    assert body["initialized"] is initialized, body
    assert body["sealed"] is sealed, body
    assert isinstance(body["standby"], bool), body
    assert H.SEMVER.match(body["version"]), body
    assert isinstance(body["server_time_utc"], int), body
    assert abs(body["server_time_utc"] - time.time()) < 300, body
    assert body.get("performance_standby") in (False, None), body
    if sealed:
        assert not body.get("cluster_name"), "cluster_name while sealed: %r" % body
        assert not body.get("cluster_id"), "cluster_id while sealed: %r" % body
    else:
        assert isinstance(body.get("cluster_name"), str) and body["cluster_name"], body
        assert isinstance(body.get("cluster_id"), str) and body["cluster_id"], body


def test_health_uninitialised(server):
    r = health(server)
    assert r.status_code == 501, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    check_body(r.json(), initialized=False, sealed=True)
    assert health(server, uninitcode=299).status_code == 299
    assert health(server, uninitcode=200).status_code == 200
    # sealed/active overrides do not apply to an uninitialised node
    assert health(server, sealedcode=299, activecode=204).status_code == 501
    r = health(server, "HEAD")
    assert r.status_code == 501 and r.content == b""
    r = health(server, "HEAD", uninitcode=299)
    assert r.status_code == 299 and r.content == b""
    r = health(server, uninitcode="abc")
    assert r.status_code == 400, (r.status_code, r.text)
    assert H.errors_of(r)


def test_health_sealed(server):
    H.init(server, shares=3, threshold=2)
    r = health(server)
    assert r.status_code == 503, (r.status_code, r.text)
    check_body(r.json(), initialized=True, sealed=True)
    r = health(server, sealedcode=299)
    assert r.status_code == 299
    check_body(r.json(), initialized=True, sealed=True)
    assert health(server, activecode=201, standbyok="true").status_code == 503
    assert health(server, uninitcode=299).status_code == 503
    r = health(server, "HEAD")
    assert r.status_code == 503 and r.content == b""
    r = health(server, "HEAD", sealedcode=299)
    assert r.status_code == 299 and r.content == b""
    assert health(server, sealedcode="x1").status_code == 400
    # hvac's health helper does not raise on the sealed code
    resp = server.client(token=None).sys.read_health_status(method="GET")
    assert getattr(resp, "status_code", None) == 503, resp
    # part of the unseal progress: still sealed
    r = server.put("sys/unseal", json={"key": server.keys[0]})
    assert r.status_code == 200 and r.json()["progress"] == 1
    assert health(server).status_code == 503


def test_health_active(unsealed):
    srv = unsealed
    r = health(srv)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    check_body(body, initialized=True, sealed=False)
    assert body["standby"] is False
    assert body.get("replication_performance_mode", "disabled") == "disabled"
    assert body.get("replication_dr_mode", "disabled") == "disabled"
    assert r.headers.get("Cache-Control") == "no-store"

    assert health(srv, activecode=201).status_code == 201
    assert health(srv, activecode=299).status_code == 299
    assert health(srv, standbyok="true").status_code == 200
    assert health(srv, standbyok="true", activecode=202).status_code == 202
    assert health(srv, standbycode=299).status_code == 200
    assert health(srv, sealedcode=299, uninitcode=299).status_code == 200
    r = health(srv, "HEAD")
    assert r.status_code == 200 and r.content == b""
    r = health(srv, "HEAD", activecode=204)
    assert r.status_code == 204 and r.content == b""
    # hvac (HEAD, its default)
    resp = srv.client(token=None).sys.read_health_status()
    assert getattr(resp, "status_code", 200) == 200

    for bad in ({"activecode": "abc"}, {"sealedcode": "1.5"}, {"standbycode": ""},
                {"uninitcode": "2x"}):
        r = health(srv, **bad)
        assert r.status_code == 400, (bad, r.status_code, r.text)
        assert H.errors_of(r), bad

    # the cluster identity is stable across calls
    a, b = health(srv).json(), health(srv).json()
    assert (a["cluster_name"], a["cluster_id"]) == (b["cluster_name"], b["cluster_id"])
    st = srv.get("sys/seal-status").json()
    assert st["cluster_id"] == a["cluster_id"] and st["cluster_name"] == a["cluster_name"]


def test_health_after_seal_and_restart(unsealed):
    srv = unsealed
    assert srv.put("sys/seal", token=srv.root_token).status_code == 204
    assert health(srv).status_code == 503
    srv.stop()
    srv.start()
    r = health(srv)
    assert r.status_code == 503, (r.status_code, r.text)
    check_body(r.json(), initialized=True, sealed=True)
    H.unseal(srv)
    H.wait_active(srv)
    assert health(srv).status_code == 200


def test_leader(unsealed):
    r = unsealed.get("sys/leader")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["ha_enabled"], bool), body
    if body["ha_enabled"]:
        assert body["is_self"] is True, body
        assert body["leader_address"] == unsealed.url, body
        assert body["leader_cluster_address"] == "https://127.0.0.1:%d" % (unsealed.port + 1), body


def test_seal_status_fields(unsealed):
    st = unsealed.get("sys/seal-status").json()
    assert st["type"] == "shamir"
    assert st["initialized"] is True and st["sealed"] is False
    assert (st["t"], st["n"], st["progress"]) == (2, 3, 0), st
    assert H.SEMVER.match(st["version"]), st
    assert st.get("storage_type", "raft") == "raft"
