"""A throwaway PostgreSQL 15 for the database engine's tests.

initdb + postgres in a temporary directory, on a free loopback port, with a superuser
`postgres` whose password is random. PostgreSQL refuses to run as root: when the tests run
as root the server runs as `nobody` (the child drops privileges before exec, so the PID we
hold is the postmaster's own and teardown signals exactly it)."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import custos_harness as H

PG_BIN = "/usr/lib/postgresql/15/bin"


def _free_port():
    for _ in range(200):
        p = H.free_port_pair()
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="custos-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.port = _free_port()
        self.password = "pg-" + uuid.uuid4().hex
        self.proc = None
        self.log_path = os.path.join(self.dir, "postgres.log")
        if os.getuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid = self.gid = None
        os.mkdir(self.sock)
        self._own(self.dir)
        self._own(self.sock)

    def _own(self, path):
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)

    def _drop(self):
        os.setsid()
        if self.uid is not None:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

    def _run(self, argv):
        r = subprocess.run(argv, preexec_fn=self._drop, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, cwd=self.dir, timeout=120)
        assert r.returncode == 0, r.stdout.decode(errors="replace")[-2000:]

    def init(self):
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        self._own(pwfile)
        self._run([PG_BIN + "/initdb", "-D", self.data, "-U", "postgres", "-A", "scram-sha-256",
                   "--pwfile", pwfile, "-E", "UTF8", "--no-sync", "--locale=C"])
        os.unlink(pwfile)
        return self

    def start(self):
        log = open(self.log_path, "ab")
        self._own(self.log_path)
        self.proc = subprocess.Popen(
            [PG_BIN + "/postgres", "-D", self.data, "-p", str(self.port), "-k", self.sock,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
             "-c", "log_min_messages=warning"],
            preexec_fn=self._drop, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.dir)
        log.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            r = subprocess.run([PG_BIN + "/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return self
            assert self.proc.poll() is None, self.log_tail()
            time.sleep(0.2)
        raise AssertionError("postgres did not start: " + self.log_tail())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def url(self, user="{{username}}", password="{{password}}", db="postgres"):
        return "postgresql://%s:%s@127.0.0.1:%d/%s?sslmode=disable" % (user, password, self.port, db)

    def psql(self, sql, user="postgres", password=None, db="postgres", check=True):
        """Run sql through psql; returns (returncode, stdout). Unaligned, tuples only."""
        env = dict(os.environ, PGPASSWORD=password if password is not None else self.password,
                   PGCONNECT_TIMEOUT="10")
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db,
                            "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace").strip()
        if check:
            assert r.returncode == 0, out
        return r.returncode, out

    def query(self, sql):
        return self.psql(sql)[1]

    def can_login(self, user, password):
        rc, _ = self.psql("SELECT 1", user=user, password=password, check=False)
        return rc == 0

    def role_exists(self, name):
        lit = "'" + name.replace("'", "''") + "'"
        return self.query("SELECT count(*) FROM pg_roles WHERE rolname = %s" % lit) == "1"
