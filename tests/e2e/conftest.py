"""pytest fixtures for the custos end-to-end tests.

Fixtures
  server_factory   make(**Server kwargs) -> started Server (fresh tmp dir); all are killed
                   by PID at the end of the test
  server           one started, uninitialised config server (plain HTTP)
  unsealed         one config server, initialised (3 shares, threshold 2) and unsealed;
                   .keys / .root_token set
  dev_server       a `custos server -dev` (module scope), root token "root-<random>"
  cert             (cert.pem, key.pem): self-signed EC P-256 for 127.0.0.1
  cluster_factory  make(n=3, tls=False, haproxy=False, start=True, **Cluster kwargs) ->
                   a started H.Cluster (fresh tmp dir); its nodes and haproxy are killed
                   by PID at the end of the test

Every test is bounded by an alarm (default 180 s; @pytest.mark.timeout_s(N) to change);
on any failure the tail of every involved server log is attached to the report.
"""

import os
import re
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import custos_harness as H  # noqa: E402

DEFAULT_TEST_TIMEOUT = int(os.environ.get("CUSTOS_TEST_TIMEOUT", "180"))


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(seconds): per-test time bound (setup + call)")


class CustosTestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CustosTestTimeout("test exceeded its time bound")


def _bounded(item, phase):
    m = item.get_closest_marker("timeout_s")
    secs = m.args[0] if m else DEFAULT_TEST_TIMEOUT
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, secs)
    return old


def _unbound(old):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item._custos_first_server = len(H.SERVERS)
    item._custos_first_aux = len(H.AUX)
    old = _bounded(item, "setup")
    try:
        yield
    finally:
        _unbound(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = _bounded(item, "call")
    try:
        yield
    finally:
        _unbound(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        first = getattr(item, "_custos_first_server", len(H.SERVERS))
        first_aux = getattr(item, "_custos_first_aux", len(H.AUX))
        args = list(getattr(item, "funcargs", {}).values())
        used = {id(v) for v in args if isinstance(v, H.Server)}
        aux = {id(v) for v in args if isinstance(v, H.Aux)}
        for c in (v for v in args if isinstance(v, H.Cluster)):
            used.update(id(s) for s in c.nodes)
            if c.haproxy:
                aux.add(id(c.haproxy))
        for i, s in enumerate(H.SERVERS):
            if i >= first or id(s) in used:
                rep.sections.append(("custos log %s (%s, pid %s, last exit %s)"
                                     % (s.name, s.url, s.pid, s.last_exit), s.log_tail(60)))
        for i, a in enumerate(H.AUX):
            if i >= first_aux or id(a) in aux:
                rep.sections.append(("%s log" % a.name, a.log_tail(40)))


def pytest_sessionfinish(session, exitstatus):
    for a in H.AUX:
        a.cleanup()
    for s in H.SERVERS:
        s.cleanup()


@pytest.fixture
def server_factory(tmp_path):
    made = []

    def make(start=True, **kw):
        n = len(made) + 1
        kw.setdefault("name", "n%d" % n)
        s = H.Server(tmp_path / ("srv%d" % n), **kw)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in made:
        s.cleanup()


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.fixture
def unsealed(server_factory):
    s = server_factory()
    H.init_and_unseal(s)
    return s


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    token = "root-" + H.uid()[:12]
    s = H.Server(tmp_path_factory.mktemp("dev"), name="dev", dev=True, dev_root_token=token)
    try:
        s.start()
        H.wait_active(s)
        yield s
    finally:
        s.cleanup()


@pytest.fixture(scope="module")
def module_unsealed(tmp_path_factory):
    """One initialised + unsealed config server shared by a test module."""
    s = H.Server(tmp_path_factory.mktemp("srv"), name="m1")
    try:
        s.start()
        H.init_and_unseal(s)
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(n=3, start=True, **kw):
        c = H.Cluster(tmp_path / ("cluster%d" % (len(made) + 1)), n=n, **kw)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        c.cleanup()


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    return H.make_cert(tmp_path_factory.mktemp("tls"))


def parse_dev_credentials(server):
    text = server.log_text()
    key = re.findall(r"Unseal Key:\s*(\S+)", text)
    tok = re.findall(r"Root Token:\s*(\S+)", text)
    return (key[-1] if key else None), (tok[-1] if tok else None)
