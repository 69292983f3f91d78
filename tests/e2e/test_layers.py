"""scripts/check-layers.py: the layer map check that scripts/test.sh runs (issue 10 section 1).

No server: each test writes a small source tree into a temporary directory and runs the
script on it, to show that every rule fails on a violation, that the allowlist can only
shrink, and that the repository itself passes.
"""
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-layers.py")


def run(tree, allowlist=False):
    args = [sys.executable, SCRIPT] + ([] if allowlist else ["--no-allowlist"]) + [str(tree)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout


def write(tree, files):
    for path, text in files.items():
        f = tree / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)


def test_repository_passes():
    rc, out = run(ROOT, allowlist=True)
    assert rc == 0, out
    assert out.startswith("layers: OK"), out


def test_clean_tree_passes(tmp_path):
    write(tmp_path, {
        "lib/util.h": "",
        "storage/txn.h": '#include "lib/util.h"\n',
        "server/backend.h": '#include "storage/txn.h"\n',
        "engines/kv.c": '#include "engines/kvutil.h"\n#include "server/backend.h"\n',
        "engines/kvutil.h": '#include "server/backend.h"\n',
        "cmd/main.c": '#include "engines/kv.h"\n#include "server/core.h"\n',
    })
    rc, out = run(tmp_path)
    assert rc == 0, out


def test_include_up_the_order_fails(tmp_path):
    write(tmp_path, {"raft/node.c": '#include "server/core.h"\n'})
    rc, out = run(tmp_path)
    assert rc == 1
    assert "NEW up: raft/node.c (raft) includes server/core.h (server)" in out


def test_sideways_between_folders_fails(tmp_path):
    write(tmp_path, {"auth/userpass.c": '#include "engines/kv.h"\n'})
    rc, out = run(tmp_path)
    assert rc == 1
    assert "NEW sideways: auth/userpass.c includes engines/kv.h" in out


def test_sideways_between_backends_of_one_folder_fails(tmp_path):
    write(tmp_path, {"engines/cubbyhole.c": '#include "engines/kv.h"\n'})
    rc, out = run(tmp_path)
    assert rc == 1
    assert "another backend's engines/kv.h" in out


def test_backend_past_backend_h_fails(tmp_path):
    write(tmp_path, {"engines/kv.c": '#include "server/router.h"\n'})
    rc, out = run(tmp_path)
    assert rc == 1
    assert "NEW backend: engines/kv.c includes server/router.h" in out


def test_loop_in_a_folder_fails(tmp_path):
    write(tmp_path, {
        "storage/a.c": '#include "storage/b.h"\n',
        "storage/b.c": '#include "storage/a.h"\n',
    })
    rc, out = run(tmp_path)
    assert rc == 1
    assert "NEW loop: storage/a and storage/b include each other" in out


def test_fixed_violation_left_on_the_allowlist_fails(tmp_path):
    # The repository's allowlist names server/ loops that this tree lacks.
    write(tmp_path, {"lib/util.h": ""})
    rc, out = run(tmp_path, allowlist=True)
    assert rc == 1
    assert "fixed but still allowlisted" in out
    assert "loop: server/core <-> server/seal" in out
