"""No plaintext at rest: grep every file of the data directory (raft log segments,
snapshots, metadata, LMDB) for the secret values, the root token and the unseal keys."""

import base64
import binascii
import os

import custos_harness as H


def all_files(root):
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return sorted(out)


def needles_for(value):
    """The value's bytes plus its base64 forms at the three alignments (minus edges)."""
    raw = value.encode()
    out = {raw}
    for shift in range(3):
        b = base64.b64encode(b"\0" * shift + raw)
        out.add(b[4:-4])
    return out


def scan(root, needles):
    """{needle: [files containing it]} over every regular file under root."""
    found = {n: [] for n in needles}
    files = all_files(root)
    for p in files:
        with open(p, "rb") as f:
            data = f.read()
        for n in needles:
            if n in data:
                found[n].append(os.path.relpath(p, root))
    return found, files


def test_no_plaintext_in_data_dir(server_factory):
    srv = server_factory()
    H.init_and_unseal(srv)
    H.enable_kv(srv, "kv")
    kv = srv.client().secrets.kv.v1
    tag = H.uid()
    canary_key = "canary-key-%s" % tag
    values = {
        "PLAINTEXT-CANARY-%s" % tag: "kv/%s/a" % canary_key,
        "second-canary-%s-with-more-text" % H.uid(): "kv/%s/b" % canary_key,
        ("LONG-CANARY-%s-" % H.uid()) * 40: "kv/%s/long" % canary_key,
    }
    for value, path in values.items():
        mount, rest = path.split("/", 1)
        kv.create_or_update_secret(rest, {"password": value, "note": "n"}, mount_point=mount,
                                   method="PUT")
    # plenty of other writes so that entries land in several places (log, LMDB pages)
    for i in range(300):
        kv.create_or_update_secret("%s/fill/%d" % (canary_key, i),
                                   {"v": "FILLER-%s-%d" % (tag, i)}, mount_point="kv", method="PUT")
    value_needles = set()
    for value in values:
        value_needles |= needles_for(value)
    filler = ("FILLER-%s-1" % tag).encode()
    secrets = {srv.root_token.encode(): "root token"}
    for k in srv.keys_hex:
        secrets[binascii.unhexlify(k)] = "unseal share (raw)"
        secrets[k.encode()] = "unseal share (hex)"
    for k in srv.keys:
        secrets[k.encode()] = "unseal share (base64)"

    def check(phase):
        found, files = scan(srv.data_dir, value_needles | {filler, canary_key.encode()} | set(secrets))
        assert files, "no files in the data dir %s" % srv.data_dir
        assert sum(os.path.getsize(p) for p in files) > 0
        leaks = {n[:40]: f for n, f in found.items()
                 if f and n not in (canary_key.encode(),)}
        assert not leaks, "%s: plaintext found in the data dir: %s (files: %s)" % (
            phase, {k.decode("latin-1"): v for k, v in leaks.items()},
            [os.path.relpath(p, srv.data_dir) for p in files])
        # positive control: key paths are stored in the clear, so the scan must see them
        assert found[canary_key.encode()], \
            "%s: the canary key path was not found in any file - the scan reads nothing? %s" % (
                phase, [os.path.relpath(p, srv.data_dir) for p in files])

    # 1. after kill -9: what is on disk without an orderly shutdown
    srv.kill9()
    check("after kill -9")
    # 2. the data really is in there: restart, unseal, read back; then orderly stop
    srv.start()
    H.unseal(srv)
    H.wait_active(srv)
    kv = srv.client().secrets.kv.v1
    for value, path in values.items():
        mount, rest = path.split("/", 1)
        assert kv.read_secret(rest, mount_point=mount)["data"]["password"] == value
    kv.create_or_update_secret("%s/after-restart" % canary_key,
                               {"v": "PLAINTEXT-CANARY-%s" % tag}, mount_point="kv", method="PUT")
    assert srv.stop() == 0
    check("after SIGTERM")
