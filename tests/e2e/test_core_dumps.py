"""No core dumps unless the config asks for them (issue 9 §1.8).

The server sets RLIMIT_CORE to 0 (soft and hard) and PR_SET_DUMPABLE to 0 at start;
`allow_core_dumps = true` leaves both alone. The test starts the server with a raised
soft core limit, so an unhardened server would show it in /proc/<pid>/limits. Dumpability
is not shown in /proc directly, but the kernel makes every /proc/<pid> file of a
non-dumpable process owned by root (proc(5)): the server therefore runs as an
unprivileged user (nobody, when the test runs as root; the test user otherwise), and a
/proc/<pid>/environ owned by root while the process's uid is not root means "not
dumpable".
"""

import os
import resource
import shutil
import sys
import tempfile

import pytest

import custos_harness as H

NOBODY = 65534

# Runs between the harness's fork and custos (which it execs with the same pid): raise the
# soft core limit to the hard one, drop to nobody when root (the uid change resets the
# parent-death signal, so set it again).
WRAPPER = r"""
import ctypes, os, resource, signal, sys
soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
if os.getuid() == 0:
    os.setgroups([])
    os.setgid(%d)
    os.setuid(%d)
ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
# An ASan build lowers the soft core limit itself unless told not to.
asan = os.environ.get("ASAN_OPTIONS", "")
os.environ["ASAN_OPTIONS"] = (asan + ":disable_coredump=0").lstrip(":")
os.execv(sys.argv[1], sys.argv[1:])
""" % (NOBODY, NOBODY)


class UnprivilegedServer(H.Server):
    def __init__(self, workdir, **kw):
        super().__init__(workdir, **kw)
        self.wrapper = os.path.join(self.workdir, "wrapper.py")
        with open(self.wrapper, "w") as f:
            f.write(WRAPPER)

    def write_config(self):
        super().write_config()
        if os.getuid() == 0:
            for root, dirs, files in os.walk(self.workdir):
                os.chown(root, NOBODY, NOBODY)
                for n in files:
                    os.chown(os.path.join(root, n), NOBODY, NOBODY)

    def argv(self):
        return [sys.executable, self.wrapper] + super().argv()


@pytest.fixture
def workdir():
    # Under /tmp, not pytest's 0700 tmp tree, which nobody cannot enter.
    d = tempfile.mkdtemp(prefix="custos-coredump-")
    os.chmod(d, 0o755)
    if os.getuid() == 0:
        os.chown(d, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def core_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                soft, hard = line.split()[4:6]
                return soft, hard
    raise AssertionError("no core line in /proc/%d/limits" % pid)


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def dumpable(pid):
    uid = proc_uid(pid)
    assert uid != 0, "the server must not run as root for this check"
    owner = os.stat("/proc/%d/environ" % pid).st_uid
    assert owner in (0, uid), owner
    return owner == uid


def start(workdir, name, extra=""):
    s = UnprivilegedServer(os.path.join(workdir, name), name=name, extra_config=extra)
    if os.getuid() == 0:
        os.chown(s.workdir, NOBODY, NOBODY)
    s.start()
    return s


def test_core_dumps_off_by_default(workdir):
    s = start(workdir, "nodump")
    try:
        H.init_and_unseal(s)  # key material is in memory from here on
        assert core_limits(s.pid) == ("0", "0"), core_limits(s.pid)
        assert not dumpable(s.pid)
    finally:
        s.cleanup()


def test_allow_core_dumps_keeps_them(workdir):
    """The control: with allow_core_dumps = true the same checks see the raised limit and
    a dumpable process, so the test above measures the server, not the harness."""
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    s = start(workdir, "dump", extra="allow_core_dumps = true\n")
    try:
        want = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert core_limits(s.pid) == (want, want), core_limits(s.pid)
        assert dumpable(s.pid)
        assert "allow_core_dumps = true" in s.log_text()
    finally:
        s.cleanup()
