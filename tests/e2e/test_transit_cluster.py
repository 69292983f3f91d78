"""Transit on a 3-node cluster across a leader change: keys made and data encrypted through
a standby (forwarded to the active node) survive a kill -9 of the active node, and the new
active node decrypts, verifies and rotates them (engines/transit*.c over raft)."""
import pytest

from test_transit import MP, b64, name, unb64


@pytest.mark.timeout_s(240)
def test_encrypt_via_standby_kill9_active_decrypt_on_new_active(cluster_factory):
    c3 = cluster_factory(3)
    old = c3.leader()
    old.client(c3.root_token).sys.enable_secrets_engine("transit", path=MP)
    sb = c3.standbys()[0]
    t = sb.client(c3.root_token).secrets.transit
    k, sk = name(), name()
    t.create_key(k, mount_point=MP)
    sb.client(c3.root_token).write("%s/keys/%s" % (MP, sk), type="ed25519")
    cts = {i: t.encrypt_data(k, b64("secret %d" % i), mount_point=MP)["data"]["ciphertext"]
           for i in range(20)}
    batch = t.encrypt_data(k, "", batch_input=[{"plaintext": b64("b%d" % i)} for i in range(50)],
                           mount_point=MP)["data"]["batch_results"]
    sig = t.sign_data(sk, b64("signed"), mount_point=MP)["data"]["signature"]
    # Every acknowledged write is applied on a quorum: nothing waits on the old leader.
    c3.kill9(old)
    new = c3.leader(timeout=30, exclude=[old])
    assert new is not old
    nt = new.client(c3.root_token).secrets.transit
    for i, ct in cts.items():
        assert unb64(nt.decrypt_data(k, ct, mount_point=MP)["data"]["plaintext"]) == \
            b"secret %d" % i
    res = nt.decrypt_data(k, "", batch_input=[{"ciphertext": r["ciphertext"]} for r in batch],
                          mount_point=MP)["data"]["batch_results"]
    assert [unb64(r["plaintext"]) for r in res] == [b"b%d" % i for i in range(50)]
    assert nt.verify_signed_data(sk, b64("signed"), signature=sig,
                                 mount_point=MP)["data"]["valid"]
    # The new active node serialises rotations; the remaining standby forwards to it.
    other = next(s for s in c3.nodes if s is not old and s is not new)
    ot = other.client(c3.root_token).secrets.transit
    ot.rotate_key(k, mount_point=MP)
    ct2 = ot.encrypt_data(k, b64("after"), mount_point=MP)["data"]["ciphertext"]
    assert ct2.startswith("vault:v2:")
    assert unb64(nt.decrypt_data(k, ct2, mount_point=MP)["data"]["plaintext"]) == b"after"
    assert unb64(ot.decrypt_data(k, cts[0], mount_point=MP)["data"]["plaintext"]) == b"secret 0"
