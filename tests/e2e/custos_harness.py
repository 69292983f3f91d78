"""Helpers for the custos end-to-end tests: binary, ports, server processes, clients.

Every process started here is tracked in SERVERS and killed by PID by the fixtures
(conftest.py) and, as a last resort, at interpreter exit. Servers are started with
PR_SET_PDEATHSIG so that they die with the test process even if pytest itself is
killed. Only 127.0.0.1 is ever contacted.
"""

import atexit
import base64
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import uuid

import hvac
import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("CUSTOS_BIN") or os.path.join(REPO, "build", "custos")

REQ_TIMEOUT = 10  # seconds, every HTTP request
START_TIMEOUT = 30  # seconds until sys/health must answer
STOP_TIMEOUT = 15  # seconds between SIGTERM and SIGKILL

SERVERS = []  # every Server created in this process, in creation order
AUX = []  # every auxiliary process (haproxy) started here, killed like the servers
_handed_out = set()

SEMVER = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")


def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port_pair():
    """A port P such that P and P+1 are both free on 127.0.0.1 (API and cluster port).

    Picked below the kernel's ephemeral range (32768-60999 here): a server binds its
    cluster port only when it is unsealed, and a port from the ephemeral range can be
    taken meanwhile by any outgoing connection on the machine."""
    import random
    lo, hi = 20000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph = int(f.read().split()[0])
        hi = min(hi, eph - 2)
    except (OSError, ValueError, IndexError):
        pass
    rnd = random.Random(os.getpid() ^ int(time.monotonic() * 1e6))
    for _ in range(2000):
        p = rnd.randrange(lo, hi)
        if p in _handed_out or (p + 1) in _handed_out:
            continue
        if _port_free(p) and _port_free(p + 1):
            _handed_out.update((p, p + 1))
            return p
    raise RuntimeError("no free port pair found")


def session(verify=True):
    """A requests session that ignores proxy settings from the environment."""
    s = requests.Session()
    s.trust_env = False
    s.verify = verify
    return s


def _pdeathsig():
    # Runs in the child between fork and exec: die with the parent (SIGKILL).
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _read_tail(path, lines=80):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(no log: %s)" % e
    return "\n".join(data.splitlines()[-lines:])


class Server:
    """One custos process: a config server (tmp dir with config + data) or a -dev server."""

    def __init__(self, workdir, name="n1", tls=None, max_request_size=None,
                 tls_min_version=None, extra_listener="", extra_config="", dev=False,
                 dev_root_token=None, retry_join=None, plaintext_join=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.tls = tls  # (cert_file, key_file) or None
        self.max_request_size = max_request_size
        self.tls_min_version = tls_min_version
        self.extra_listener = extra_listener
        self.extra_config = extra_config
        self.dev = dev
        self.dev_root_token = dev_root_token
        # retry_join: None, or a callable returning the Servers this node asks for a join
        # challenge (re-evaluated at every start, so restarted peers' ports are current).
        self.retry_join = retry_join
        # Joins over http:// need the server's explicit unsafe_allow_plaintext_join; the
        # plain-HTTP test clusters on loopback set it (None: set it when tls is off).
        self.plaintext_join = (not tls) if plaintext_join is None else plaintext_join
        self.data_dir = os.path.join(self.workdir, "data")
        self.config_path = os.path.join(self.workdir, "custos.hcl")
        self.log_path = os.path.join(self.workdir, "server.log")
        self.port = free_port_pair()
        self.proc = None
        self.starts = 0
        self.last_exit = None
        self.keys = None  # filled by init_and_unseal
        self.root_token = dev_root_token
        SERVERS.append(self)

    # ---- addresses and clients ---------------------------------------------------
    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "%s://%s" % (self.scheme, self.addr)

    @property
    def cluster_addr(self):
        """host:port of the cluster (raft, forwarding) listener: API port + 1."""
        return "127.0.0.1:%d" % (self.port + 1)

    @property
    def verify(self):
        return self.tls[0] if self.tls else True

    def session(self):
        return session(self.verify)

    def client(self, token=None, strict_http=False):
        """An hvac client (token defaults to the root token once known)."""
        if token is None:
            token = self.root_token
        return hvac.Client(url=self.url, token=token, verify=self.verify,
                           timeout=REQ_TIMEOUT, session=self.session(),
                           strict_http=strict_http)

    def request(self, method, path, token=None, timeout=REQ_TIMEOUT, **kw):
        """Plain HTTP request to /v1/<path> (or path if it starts with '/')."""
        url = self.url + (path if path.startswith("/") else "/v1/" + path)
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["X-Vault-Token"] = token
        with self.session() as s:
            return s.request(method, url, headers=headers, timeout=timeout, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def raw_request(self, method, target, body=None, headers=None, timeout=REQ_TIMEOUT):
        """http.client request with the target sent verbatim (no path normalisation)."""
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls[0])
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                            context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, target, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    # ---- config and process --------------------------------------------------------
    def write_config(self):
        lst = ['  address = "%s"' % self.addr,
               '  cluster_address = "127.0.0.1:%d"' % (self.port + 1)]
        if self.tls:
            lst.append('  tls_cert_file = "%s"' % self.tls[0])
            lst.append('  tls_key_file = "%s"' % self.tls[1])
            if self.tls_min_version:
                lst.append('  tls_min_version = "%s"' % self.tls_min_version)
        else:
            lst.append("  tls_disable = true")
        if self.max_request_size is not None:
            lst.append("  max_request_size = %d" % self.max_request_size)
        if self.extra_listener:
            lst.append(self.extra_listener)
        joins = ""
        for peer in (self.retry_join() if self.retry_join else []):
            joins += '  retry_join {\n    leader_api_addr = "%s"\n' % peer.url
            if peer.tls:
                joins += '    leader_ca_cert_file = "%s"\n' % peer.tls[0]
            joins += "  }\n"
        if self.plaintext_join:
            joins += "  unsafe_allow_plaintext_join = true\n"
        text = (
            'storage "raft" {\n  path = "%s"\n  node_id = "%s"\n%s}\n'
            'listener "tcp" {\n%s\n}\n'
            'disable_mlock = true\n'
            'api_addr = "%s"\n'
            'cluster_addr = "https://127.0.0.1:%d"\n'
            'log_level = "debug"\n%s'
        ) % (self.data_dir, self.name, joins, "\n".join(lst), self.url, self.port + 1,
             self.extra_config)
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(text)

    def argv(self):
        if self.dev:
            a = [BIN, "server", "-dev", "-dev-listen-address=%s" % self.addr]
            if self.dev_root_token:
                a.append("-dev-root-token-id=%s" % self.dev_root_token)
            return a
        return [BIN, "server", "-config=%s" % self.config_path]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, wait=True, timeout=START_TIMEOUT):
        assert not self.running(), "server already running"
        if not os.access(BIN, os.X_OK):
            raise RuntimeError("custos binary not found at %s (set CUSTOS_BIN or build)" % BIN)
        for attempt in range(3):
            if not self.dev:
                self.write_config()
            self.starts += 1
            log = open(self.log_path, "ab")
            log.write(("\n===== start #%d: %s =====\n" % (self.starts, " ".join(self.argv()))).encode())
            log.flush()
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir,
                                         preexec_fn=_pdeathsig, close_fds=True)
            log.close()
            if not wait:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except RuntimeError:
                # A port taken by someone else between picking and binding: on the very
                # first start only, pick new ports and try again.
                tail = self.log_text(since_start=True)
                if self.starts == 1 + attempt and not self.running() and re.search(
                        r"in use|EADDRINUSE", tail, re.I) and attempt < 2:
                    self.port = free_port_pair()
                    continue
                raise
        raise RuntimeError("unreachable")

    def wait_ready(self, timeout=START_TIMEOUT):
        """Wait until sys/health answers with any HTTP status."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.running():
                self.last_exit = self.proc.returncode
                raise RuntimeError("custos exited with %s during start-up:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                with self.session() as s:
                    s.get(self.url + "/v1/sys/health", timeout=2)
                return
            except requests.RequestException as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError("custos did not answer sys/health within %ss (%s):\n%s"
                           % (timeout, last, self.log_tail()))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout` s. Returns the exit status (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.last_exit = "SIGKILL after SIGTERM timeout"
                return self.last_exit
        self.last_exit = self.proc.returncode
        return self.last_exit

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.last_exit = self.proc.returncode if self.proc else None

    def restart(self, wait=True):
        self.stop()
        return self.start(wait=wait)

    def cleanup(self):
        try:
            if self.dev:
                # a -dev server removes its temporary data directory on SIGTERM only
                self.stop(timeout=5)
            self.kill9()
        except Exception:
            pass

    def log_text(self, since_start=False):
        try:
            with open(self.log_path, "rb") as f:
                if since_start:
                    f.seek(getattr(self, "_log_offset", 0))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=80):
        return _read_tail(self.log_path, lines)

    def __repr__(self):
        return "Server(%s, pid=%s, %s)" % (self.url, self.pid, self.workdir)


@atexit.register
def _kill_all():
    for a in AUX:
        a.cleanup()
    for s in SERVERS:
        s.cleanup()


# ---- init / unseal -------------------------------------------------------------------
def init(server, shares=3, threshold=2):
    r = server.put("sys/init", json={"secret_shares": shares, "secret_threshold": threshold})
    assert r.status_code == 200, "sys/init: %s %s" % (r.status_code, r.text)
    body = r.json()
    server.keys = body["keys_base64"]
    server.keys_hex = body["keys"]
    server.root_token = body["root_token"]
    return body


def unseal(server, keys=None, threshold=None):
    keys = keys if keys is not None else server.keys
    body = None
    for k in keys[:threshold] if threshold else keys:
        r = server.put("sys/unseal", json={"key": k})
        assert r.status_code == 200, "sys/unseal: %s %s" % (r.status_code, r.text)
        body = r.json()
        if not body.get("sealed", True):
            return body
    raise AssertionError("still sealed after %d keys: %s" % (len(keys), body))


def init_and_unseal(server, shares=3, threshold=2):
    """Initialise and unseal; returns (keys_base64, root_token). Waits until the node
    answers sys/health 200 (active)."""
    init(server, shares, threshold)
    unseal(server, server.keys[:threshold])
    wait_active(server)
    return server.keys, server.root_token


def wait_active(server, timeout=20):
    deadline = time.monotonic() + timeout
    code = None
    while time.monotonic() < deadline:
        try:
            code = server.get("sys/health", timeout=2).status_code
            if code == 200:
                return
        except requests.RequestException as e:
            code = e
        time.sleep(0.05)
    raise AssertionError("node not active within %ss (last sys/health: %s)" % (timeout, code))


def enable_kv(server, path="kv", token=None):
    c = server.client(token)
    c.sys.enable_secrets_engine("kv", path=path, options={"version": "1"})


def random_token():
    return "hvs." + base64.urlsafe_b64encode(os.urandom(18)).decode().rstrip("=")


def uid():
    return uuid.uuid4().hex


def errors_of(resp):
    """The "errors" list of an error response (asserts the body is Vault's error shape)."""
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError("error body is not JSON: %r" % resp.text[:300])
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), \
        "error body without an errors list: %r" % body
    return body["errors"]


def make_cert(dirpath, cn="localhost"):
    """Self-signed EC P-256 certificate for 127.0.0.1/localhost; returns (cert, key)."""
    cert = os.path.join(str(dirpath), "cert.pem")
    key = os.path.join(str(dirpath), "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=%s" % cn,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, timeout=60)
    return cert, key


def run_cli(args, env=None, timeout=30, input_text=None):
    """Run `custos ARGS...` (the CLI side); returns CompletedProcess with text output."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("VAULT_", "CUSTOS_")) and k.lower() not in (
             "http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    e.update(env or {})
    return subprocess.run([BIN] + list(args), env=e, timeout=timeout,
                          input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def json_or_fail(text, what="output"):
    try:
        return json.loads(text)
    except ValueError:
        raise AssertionError("%s is not JSON: %r" % (what, text[:500]))


# ---- auxiliary processes (haproxy) ------------------------------------------------------
class Aux:
    """A helper process (haproxy) tracked in AUX and killed by PID like the servers."""

    def __init__(self, name, argv, log_path, cwd):
        self.name, self.argv, self.log_path, self.cwd = name, argv, log_path, cwd
        self.proc = None
        AUX.append(self)

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.cwd,
                                     preexec_fn=_pdeathsig, close_fds=True)
        log.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        if self.running():
            try:
                self.proc.terminate()
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_tail(self, lines=40):
        return _read_tail(self.log_path, lines)


HAPROXY_TEMPLATE = os.path.join(REPO, "deploy", "haproxy.cfg")


def haproxy_bin():
    for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy"):
        if os.access(p, os.X_OK):
            return p
    return None


def haproxy_config(workdir, port, nodes, tls=None):
    """deploy/haproxy.cfg with its placeholders filled for `nodes` (Servers). tls is the
    (cert, key) pair the nodes use; the front end then speaks HTTPS with it too."""
    with open(HAPROXY_TEMPLATE) as f:
        text = f.read()
    bind = "127.0.0.1:%d" % port
    opts = ""
    if tls:
        pem = os.path.join(workdir, "haproxy.pem")  # haproxy wants cert + key in one file
        with open(pem, "w") as out:
            for part in tls:
                with open(part) as src:
                    out.write(src.read())
        os.chmod(pem, 0o600)
        bind += " ssl crt %s" % pem
        opts = "ssl verify required ca-file %s check-ssl" % tls[0]
    servers = "".join("    server %s %s\n" % (n.name, n.addr) for n in nodes)
    standbys = "".join("    server %s-standby %s track custos_any/%s\n" % (n.name, n.addr, n.name)
                       for n in nodes)
    out = []
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):  # the header documents the placeholders
            for k, v in (("@DIR@", workdir), ("@BIND@", bind), ("@SERVER_OPTS@", opts),
                         ("@SERVERS@", servers.rstrip("\n")),
                         ("@STANDBYS@", standbys.rstrip("\n"))):
                line = line.replace(k, v)
        out.append(line)
    return "\n".join(out) + "\n"


# ---- clusters ---------------------------------------------------------------------------
CLUSTER_JOIN_TIMEOUT = 30  # seconds for a joining node to become unsealed
CLUSTER_VOTERS_TIMEOUT = 60  # seconds until autopilot has promoted every node


class Cluster:
    """N custos nodes on 127.0.0.1 forming one raft cluster through retry_join.

    start(): every node starts with retry_join blocks naming all the others; n1 is
    initialised (threshold of `shares`) and unsealed, autopilot's stabilization time is
    lowered, every other node is unsealed with the cluster's keys once it has fetched its
    join challenge, and start() returns when every node is unsealed and the raft
    configuration has N voters. With haproxy=True an haproxy (deploy/haproxy.cfg) is put
    in front, routing to whichever node answers sys/health 200.

    All nodes are Servers (in SERVERS) and haproxy is in AUX, so the fixtures kill them by
    PID even if the test forgets; cleanup() does it at once.
    """

    def __init__(self, workdir, n=3, tls=False, haproxy=False, shares=3, threshold=2,
                 stabilization="1s", seed_retry_join=True, extra_listener=""):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.n = n
        self.shares, self.threshold = shares, threshold
        self.stabilization = stabilization
        self.tls = make_cert(self.workdir) if tls else None
        self.want_haproxy = haproxy
        self.haproxy = None
        self.haproxy_port = None
        self.keys = None
        self.root_token = None
        self.nodes = []
        for i in range(1, n + 1):
            # seed_retry_join=False leaves n1 (the node initialised) without retry_join.
            joins = self._peers_fn(i - 1) if (i > 1 or seed_retry_join) else None
            s = Server(os.path.join(self.workdir, "n%d" % i), name="n%d" % i, tls=self.tls,
                       retry_join=joins, extra_listener=extra_listener)
            self.nodes.append(s)

    def _peers_fn(self, idx):
        return lambda: [o for j, o in enumerate(self.nodes) if j != idx]

    def node(self, name):
        return next(s for s in self.nodes if s.name == name)

    # ---- formation ---------------------------------------------------------------------
    def start(self):
        for s in self.nodes:
            s.start()
        n1 = self.nodes[0]
        init(n1, self.shares, self.threshold)
        self.keys, self.root_token = n1.keys, n1.root_token
        for s in self.nodes:
            s.keys, s.root_token = self.keys, self.root_token
        unseal(n1, self.keys[:self.threshold])
        wait_active(n1)
        if self.stabilization:
            self.set_autopilot(server_stabilization_time=self.stabilization)
        for s in self.nodes[1:]:
            self.unseal_node(s)
        self.wait_voters(self.n)
        if self.want_haproxy:
            self.start_haproxy()
        return self

    def set_autopilot(self, **cfg):
        r = self.leader().request("POST", "sys/storage/raft/autopilot/configuration",
                                  token=self.root_token, json=cfg)
        assert r.status_code in (200, 204), "autopilot configuration: %s %s" % (
            r.status_code, r.text)

    def seal_status(self, node):
        r = node.get("sys/seal-status", timeout=3)
        assert r.status_code == 200, "seal-status on %s: %s %s" % (node.name, r.status_code,
                                                                  r.text)
        return r.json()

    def unseal_node(self, node, timeout=CLUSTER_JOIN_TIMEOUT):
        """Unseal a (joining or restarted) member with the cluster's keys and wait until
        it reports unsealed. A joiner first has to fetch its challenge (retry_join asks
        every 2 s): until then seal-status says initialized=false."""
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            try:
                st = self.seal_status(node)
                if st.get("initialized"):
                    break
            except (requests.RequestException, AssertionError, ValueError) as e:
                st = e
            time.sleep(0.1)
        else:
            raise AssertionError("%s never got a join challenge within %ss (seal-status %s):\n%s"
                                 % (node.name, timeout, st, node.log_tail()))
        if st.get("sealed", True):
            for k in self.keys[:self.threshold]:
                r = node.put("sys/unseal", json={"key": k})
                assert r.status_code == 200, "sys/unseal on %s: %s %s" % (
                    node.name, r.status_code, r.text)
                if not r.json().get("sealed", True):
                    break
        # After the threshold the joiner answers the challenge, joins as a non-voter and
        # catches up before it reports unsealed: poll.
        while time.monotonic() < deadline:
            try:
                st = self.seal_status(node)
                if st.get("sealed") is False:
                    return st
            except (requests.RequestException, AssertionError, ValueError) as e:
                st = e
            if not node.running():
                break
            time.sleep(0.1)
        raise AssertionError("%s still sealed %ss after its unseal keys (seal-status %s):\n%s"
                             % (node.name, timeout, st, node.log_tail()))

    # ---- roles -------------------------------------------------------------------------
    def health(self, node, timeout=2):
        """sys/health status code of a node, or None when it does not answer."""
        if not node.running():
            return None
        try:
            return node.get("sys/health", timeout=timeout).status_code
        except requests.RequestException:
            return None

    def leader(self, timeout=20, exclude=()):
        """The one running node whose sys/health is 200 (waits until there is exactly one)."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            codes = {s.name: self.health(s) for s in self.nodes if s not in exclude}
            active = [s for s in self.nodes if codes.get(s.name) == 200]
            if len(active) == 1:
                return active[0]
            seen = codes
            time.sleep(0.05)
        raise AssertionError("no single active node within %ss (sys/health: %s)"
                             % (timeout, seen))

    def standbys(self):
        """Running nodes that answer sys/health 429 right now."""
        return [s for s in self.nodes if self.health(s) == 429]

    def configuration(self, node=None):
        node = node or self.leader()
        r = node.get("sys/storage/raft/configuration", token=self.root_token)
        assert r.status_code == 200, "raft configuration: %s %s" % (r.status_code, r.text)
        return r.json()["data"]["config"]

    def wait_voters(self, n, timeout=CLUSTER_VOTERS_TIMEOUT):
        """Wait until the raft configuration has exactly n servers, all voters."""
        deadline = time.monotonic() + timeout
        cfg = None
        while time.monotonic() < deadline:
            try:
                cfg = self.configuration()
                servers = cfg.get("servers") or []
                if len(servers) == n and all(x.get("voter") for x in servers):
                    return cfg
            except (AssertionError, requests.RequestException, ValueError) as e:
                cfg = e
            time.sleep(0.2)
        raise AssertionError("configuration never had %d voters within %ss: %s"
                             % (n, timeout, cfg))

    # ---- failures ----------------------------------------------------------------------
    def kill9(self, node):
        node.kill9()

    def restart(self, node, unseal=True):
        """(Re)start a member: stop it if it runs, start it, unseal it with the keys."""
        if node.running():
            node.stop()
        node.start()
        if unseal:
            self.unseal_node(node)
        return node

    # ---- replication -------------------------------------------------------------------
    def digest(self, node):
        r = node.get("sys/storage/raft/digest", token=self.root_token, timeout=3)
        assert r.status_code == 200, "digest on %s: %s %s" % (node.name, r.status_code, r.text)
        return r.json()["data"]

    def wait_converged(self, timeout=30, nodes=None):
        """Wait until every running node (or `nodes`) reports the same applied index and
        the same digest of the entries it applied. Returns {name: digest data}."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                ds = {s.name: self.digest(s)
                      for s in (nodes or [x for x in self.nodes if x.running()])}
                idx = {d["applied_index"] for d in ds.values()}
                dig = {d["digest"] for d in ds.values()}
                if len(idx) == 1 and len(dig) == 1:
                    return ds
                if len(idx) == 1 and len(dig) > 1:
                    raise AssertionError("replicas diverged: equal applied index, different "
                                         "digests: %s" % ds)
                last = ds
            except (requests.RequestException, ValueError, KeyError) as e:
                last = e
            except AssertionError as e:
                if "diverged" in str(e):
                    raise
                last = e
            time.sleep(0.1)
        raise AssertionError("replicas did not converge within %ss: %s" % (timeout, last))

    # ---- haproxy -----------------------------------------------------------------------
    @property
    def haproxy_url(self):
        if not self.haproxy_port:
            return None
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.haproxy_port)

    def start_haproxy(self, timeout=15):
        exe = haproxy_bin()
        if not exe:
            raise RuntimeError("haproxy is not installed (scripts/install-deps.sh installs it)")
        self.haproxy_port = free_port_pair()
        cfg = os.path.join(self.workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(self.workdir, self.haproxy_port, self.nodes, self.tls))
        self.haproxy = Aux("haproxy", [exe, "-db", "-f", cfg],
                           os.path.join(self.workdir, "haproxy.log"), self.workdir).start()
        # Ready when haproxy has marked exactly the active node up.
        deadline = time.monotonic() + timeout
        up = None
        while time.monotonic() < deadline:
            if not self.haproxy.running():
                raise RuntimeError("haproxy exited:\n" + self.haproxy.log_tail())
            try:
                up = self.haproxy_up()
                if up == [self.leader().name]:
                    return
            except OSError as e:
                up = e
            time.sleep(0.1)
        raise RuntimeError("haproxy never routed to the active node only (up: %s):\n%s"
                           % (up, self.haproxy.log_tail()))

    def haproxy_up(self):
        """Names of the back-end servers haproxy currently considers up."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect(os.path.join(self.workdir, "haproxy.sock"))
            sock.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        lines = data.decode("utf-8", "replace").splitlines()
        if not lines:
            return []
        hdr = lines[0].lstrip("# ").split(",")
        up = []
        for line in lines[1:]:
            row = dict(zip(hdr, line.split(",")))
            if row.get("pxname") == "custos_active" and row.get("svname") not in (
                    "FRONTEND", "BACKEND") and row.get("bck") != "1" and \
                    row.get("status", "").startswith("UP"):  # backups: the standbys
                up.append(row["svname"])
        return sorted(up)

    def haproxy_session(self):
        return session(self.tls[0] if self.tls else True)

    # ---- teardown ----------------------------------------------------------------------
    def cleanup(self):
        if self.haproxy:
            self.haproxy.cleanup()
        for s in self.nodes:
            s.cleanup()

    stop = cleanup

    def log_tails(self, lines=60):
        out = [("custos log %s (%s, pid %s, last exit %s)" % (s.name, s.url, s.pid, s.last_exit),
                s.log_tail(lines)) for s in self.nodes]
        if self.haproxy:
            out.append(("haproxy log", self.haproxy.log_tail(lines)))
        return out

    def __repr__(self):
        return "Cluster(%s)" % ", ".join("%s=%s" % (s.name, s.url) for s in self.nodes)


class Writer:
    """Writes through one keep-alive session to a base URL; used by the cluster tests to
    keep track of which writes were acknowledged."""

    def __init__(self, url, token, verify=True, timeout=REQ_TIMEOUT):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        self.s = session(verify)

    def put(self, path, data):
        """PUT /v1/<path>; returns the response (redirects are not followed)."""
        return self.s.put(self.url + "/v1/" + path, json=data, timeout=self.timeout,
                          headers={"X-Vault-Token": self.token}, allow_redirects=False)

    def get(self, path):
        return self.s.get(self.url + "/v1/" + path, timeout=self.timeout,
                          headers={"X-Vault-Token": self.token}, allow_redirects=False)

    def close(self):
        self.s.close()
