"""The CLI side of the binary against a real server: operator init/unseal/seal, status,
read/write/list/delete, secrets enable/disable/list; VAULT_* and CUSTOS_* environment."""

import os

import pytest

import custos_harness as H


@pytest.fixture
def cli(server):
    home = os.path.join(server.workdir, "home")
    os.makedirs(home, exist_ok=True)
    base = {"VAULT_ADDR": server.url, "HOME": home}

    def run(*args, token=None, env=None, timeout=30):
        e = dict(base)
        if token:
            e["VAULT_TOKEN"] = token
        e.update(env or {})
        return H.run_cli(list(args), env=e, timeout=timeout)

    run.server = server
    run.home = home
    return run


def ok(p):
    assert p.returncode == 0, "exit %s\nstdout: %s\nstderr: %s" % (p.returncode, p.stdout, p.stderr)
    return p


def test_cli_full_cycle(cli):
    srv = cli.server
    # ---- init ------------------------------------------------------------------------
    p = ok(cli("operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json"))
    init = H.json_or_fail(p.stdout, "operator init -format=json")
    keys = init["unseal_keys_b64"]
    assert len(keys) == 3 and len(init["unseal_keys_hex"]) == 3, init
    assert init.get("unseal_shares") == 3 and init.get("unseal_threshold") == 2, init
    root = init["root_token"]
    assert root
    # a second init fails
    p = cli("operator", "init", "-key-shares=3", "-key-threshold=2")
    assert p.returncode != 0, p.stdout

    # ---- status while sealed: exit 2 -----------------------------------------------------
    p = cli("status")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Sealed" in p.stdout and "true" in p.stdout, p.stdout
    p = cli("status", "-format=json")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    st = H.json_or_fail(p.stdout, "status -format=json")
    assert st["sealed"] is True and st["initialized"] is True and st["t"] == 2 and st["n"] == 3

    # ---- unseal ---------------------------------------------------------------------------------
    p = ok(cli("operator", "unseal", keys[0]))
    assert "Unseal Progress" in p.stdout or "progress" in p.stdout.lower(), p.stdout
    assert srv.get("sys/seal-status").json()["progress"] == 1
    p = ok(cli("operator", "unseal", "-format=json", init["unseal_keys_hex"][2]))
    assert H.json_or_fail(p.stdout, "operator unseal -format=json")["sealed"] is False
    H.wait_active(srv)
    p = cli("status")
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "false" in p.stdout
    st = H.json_or_fail(ok(cli("status", "-format=json")).stdout)
    assert st["sealed"] is False

    # ---- secrets enable/list ------------------------------------------------------------------------
    ok(cli("secrets", "enable", "-path=x", "kv", token=root))
    p = ok(cli("secrets", "list", "-format=json", token=root))
    mounts = H.json_or_fail(p.stdout, "secrets list -format=json")
    assert mounts["x/"]["type"] == "kv", mounts
    p = ok(cli("secrets", "list", token=root))
    assert "x/" in p.stdout and "kv" in p.stdout, p.stdout
    p = cli("secrets", "enable", "-path=x", "kv", token=root)
    assert p.returncode != 0, "enabling over an existing mount succeeded: %s" % p.stdout

    # ---- write/read/list/delete -------------------------------------------------------------------------
    ok(cli("write", "x/app", "password=s3cr3t", "user=admin", "ttl=1h", token=root))
    p = ok(cli("read", "-field=password", "x/app", token=root))
    assert p.stdout.strip() == "s3cr3t", p.stdout
    p = ok(cli("read", "-format=json", "x/app", token=root))
    got = H.json_or_fail(p.stdout, "read -format=json")
    assert got["data"] == {"password": "s3cr3t", "user": "admin", "ttl": "1h"}, got
    assert got["lease_duration"] == 3600, got
    p = ok(cli("read", "x/app", token=root))
    assert "password" in p.stdout and "s3cr3t" in p.stdout, p.stdout
    assert srv.get("x/app", token=root).json()["data"]["user"] == "admin"
    ok(cli("write", "x/dir/one", "a=1", token=root))
    p = ok(cli("list", "x/", token=root))
    lines = [l.strip() for l in p.stdout.splitlines()]
    assert "app" in lines and "dir/" in lines, p.stdout
    p = ok(cli("list", "-format=json", "x", token=root))
    assert H.json_or_fail(p.stdout, "list -format=json") == ["app", "dir/"], p.stdout
    p = cli("read", "-field=nope", "x/app", token=root)
    assert p.returncode != 0, p.stdout
    ok(cli("delete", "x/app", token=root))
    p = cli("read", "x/app", token=root)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert srv.get("x/app", token=root).status_code == 404

    # ---- bad token ----------------------------------------------------------------------------------------
    p = cli("read", "x/dir/one", token=H.random_token())
    assert p.returncode != 0 and "permission denied" in (p.stdout + p.stderr).lower(), (p.stdout, p.stderr)

    # ---- CUSTOS_* equivalents and ~/.vault-token ---------------------------------------------------------
    p = ok(H.run_cli(["read", "-field=a", "x/dir/one"],
                     env={"CUSTOS_ADDR": srv.url, "CUSTOS_TOKEN": root, "HOME": cli.home}))
    assert p.stdout.strip() == "1"
    with open(os.path.join(cli.home, ".vault-token"), "w") as f:
        f.write(root + "\n")
    p = ok(cli("read", "-field=a", "x/dir/one"))
    assert p.stdout.strip() == "1"
    os.unlink(os.path.join(cli.home, ".vault-token"))

    # ---- secrets disable -------------------------------------------------------------------------------------
    ok(cli("secrets", "disable", "x", token=root))
    mounts = H.json_or_fail(ok(cli("secrets", "list", "-format=json", token=root)).stdout)
    assert "x/" not in mounts

    # ---- seal ---------------------------------------------------------------------------------------------------
    ok(cli("operator", "seal", token=root))
    p = cli("status")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert srv.get("sys/seal-status").json()["sealed"] is True
    # unseal -reset clears progress
    ok(cli("operator", "unseal", keys[1]))
    assert srv.get("sys/seal-status").json()["progress"] == 1
    ok(cli("operator", "unseal", "-reset"))
    assert srv.get("sys/seal-status").json()["progress"] == 0


def test_cli_status_unreachable(tmp_path):
    port = H.free_port_pair()
    p = H.run_cli(["status"], env={"VAULT_ADDR": "http://127.0.0.1:%d" % port,
                                  "HOME": str(tmp_path)})
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "no error message"


def test_cli_version():
    p = ok(H.run_cli(["version"]))
    assert "1." in p.stdout, p.stdout


def test_cli_unknown_command():
    p = H.run_cli(["frobnicate"])
    assert p.returncode != 0


def test_cli_init_default_shares(cli):
    p = ok(cli("operator", "init", "-format=json"))
    init = H.json_or_fail(p.stdout)
    assert len(init["unseal_keys_b64"]) == 5 and init["unseal_threshold"] == 3, init
    st = cli.server.get("sys/seal-status").json()
    assert (st["t"], st["n"]) == (3, 5)
