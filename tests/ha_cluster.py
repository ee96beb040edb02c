"""A high-availability PostgreSQL cluster of our own: one etcd member and two PostgreSQL 15 nodes
managed by Patroni in synchronous mode, everything in a temporary directory on free ports.

The HA tests (tests/test_ha.py) use it, and so does `make run-ha` (`python -m tests.ha_cluster`),
which puts the service on it for anyone to try a switchover by hand. PostgreSQL refuses to run as
root, so as root Patroni runs as the postgres user; etcd runs as whoever starts it. Every process
is started here and stopped here by its PID, never by name.

Timings are short, for tests (STACK-NOTES §11): the leader key lives `ttl` seconds, Patroni's
loop runs every `loop_wait`; a lost leader is replaced about `ttl` seconds after it died.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

from .private_cluster import _bindir, free_port

TTL, LOOP_WAIT, RETRY_TIMEOUT = 8, 1, 3  # loop_wait + 2 * retry_timeout <= ttl
NAMES = ("n1", "n2")


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not found:
        raise RuntimeError(f"{name} is not installed: apt-get install patroni etcd-server haproxy")
    return found


def _get_json(url: str, timeout: float = 1.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _wait(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")"
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


class Node:
    def __init__(self, cluster: "HACluster", name: str):
        self.name = name
        self.port = free_port()
        self.rest_port = free_port()
        self.dir = cluster.dir / name
        self.data = self.dir / "data"
        self.config = self.dir / "patroni.yml"
        self.log = self.dir / "patroni.log"
        self.patroni: subprocess.Popen | None = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def postmaster_pid(self) -> int | None:
        """The node's postmaster, if one runs on our data directory."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.data).encode() in cmdline else None  # not a reused PID


class HACluster:
    """etcd plus two Patroni nodes. `start()` returns once a leader runs and the other node is
    its synchronous standby; `stop()` ends every process it started, whatever state it is in."""

    def __init__(self, directory: Path | None = None):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="ds-ha-"))
        self.as_root = os.geteuid() == 0
        self._own(self.dir)
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.etcd: subprocess.Popen | None = None
        self.scope = "ds-ha-" + self.dir.name.rsplit("-", 1)[-1]
        self.nodes = {name: Node(self, name) for name in NAMES}
        self.patroni, self.patronictl = _which("patroni"), _which("patronictl")

    # Starting and stopping --------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> "HACluster":
        try:
            self._start_etcd()
            for node in self.nodes.values():
                node.dir.mkdir(parents=True, exist_ok=True)
                node.config.write_text(json.dumps(self._patroni_config(node), indent=2))
                self._own(node.dir)
            # Both at once: one wins the initialize key and bootstraps, the other waits for it
            # and clones it with pg_basebackup.
            for node in self.nodes.values():
                self.start_node(node.name)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _own(self, path: Path) -> None:
        if self.as_root:
            shutil.chown(path, "postgres", "postgres")

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        log = (self.dir / "etcd.log").open("w")
        self.etcd = subprocess.Popen(
            [
                _which("etcd"),
                "--name=etcd0",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=etcd0={peer}",
                "--unsafe-no-fsync",  # a test cluster: nothing here must survive a power cut
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not our children
        )
        log.close()

        def etcd_up():
            with contextlib.suppress(OSError, ValueError):
                return _get_json(client + "/health").get("health") == "true"

        _wait(etcd_up, 15, "etcd")

    def _patroni_config(self, node: Node) -> dict:
        # JSON is YAML: Patroni reads this as its YAML configuration file.
        return {
            "scope": self.scope,
            "namespace": "/dataservice-ha/",
            "name": node.name,
            "restapi": {
                "listen": f"127.0.0.1:{node.rest_port}",
                "connect_address": f"127.0.0.1:{node.rest_port}",
            },
            "etcd3": {"hosts": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_log_hints": "on",
                            "max_connections": 100,
                            # The OS never crashes in these tests (processes do): fsync buys
                            # nothing here and costs seconds. (pg_rewind needs full_page_writes.)
                            "fsync": "off",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 trust",
                    "host all all 127.0.0.1/32 trust",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.port}",
                "connect_address": f"127.0.0.1:{node.port}",
                "data_dir": str(node.data),
                "bin_dir": str(_bindir()),
                "pgpass": str(node.dir / "pgpass"),
                "authentication": {
                    "replication": {"username": "replicator", "password": "replicator"},
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "rewind": {"username": "rewinder", "password": "rewinder"},
                },
                "parameters": {"unix_socket_directories": str(node.dir)},
            },
        }

    def start_node(self, name: str) -> None:
        """Starts the node's Patroni (which starts its PostgreSQL, as a replica if another node
        leads: a lost old leader rejoins through pg_rewind)."""
        node = self.nodes[name]
        log = node.log.open("a")
        node.patroni = subprocess.Popen(
            [self.patroni, str(node.config)],
            cwd=node.dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
            user="postgres" if self.as_root else None,
            group="postgres" if self.as_root else None,
            extra_groups=[] if self.as_root else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill_node(self, name: str) -> None:
        """The node is lost: its Patroni and all its PostgreSQL processes die at once (SIGKILL),
        with no chance to hand over or to say goodbye to clients."""
        node = self.nodes[name]
        if node.patroni is not None:
            node.patroni.kill()
            node.patroni.wait()
        postmaster = node.postmaster_pid()
        if postmaster is not None:
            # Its children each run in a session of their own: found by their parent.
            for pid in [postmaster, *_children(postmaster)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _wait(lambda: node.postmaster_pid() is None, 10, f"{name}'s PostgreSQL to die")

    def stop_node(self, name: str, timeout: float = 15.0) -> None:
        """Patroni stops its PostgreSQL and exits on SIGTERM; anything left is killed."""
        self._stop_nodes([name], timeout)

    def _stop_nodes(self, names, timeout: float) -> None:
        running = [self.nodes[n].patroni for n in names if self.nodes[n].patroni is not None]
        for patroni in running:
            if patroni.poll() is None:
                patroni.terminate()
        deadline = time.monotonic() + timeout
        for patroni in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                patroni.wait(max(deadline - time.monotonic(), 0.1))
        for name in names:
            self.kill_node(name)

    def stop(self) -> None:
        """Stops every process this cluster started. Safe to call twice and after a failure."""
        with contextlib.suppress(Exception):
            self._stop_nodes(list(self.nodes), timeout=10)
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.terminate()
            try:
                self.etcd.wait(5)
            except subprocess.TimeoutExpired:
                self.etcd.kill()
                self.etcd.wait()

    def destroy(self) -> None:
        """Kills everything (nothing here is kept, so nothing needs a clean shutdown) and
        removes the directory."""
        for name in self.nodes:
            with contextlib.suppress(Exception):
                self.kill_node(name)
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # Looking at it ----------------------------------------------------------------------------

    def members(self) -> list[dict]:
        """Patroni's view (GET /cluster) from any node that answers; [] when none does."""
        for node in self.nodes.values():
            with contextlib.suppress(OSError, ValueError):
                return _get_json(node.rest + "/cluster")["members"]
        return []

    def leader(self) -> str | None:
        for member in self.members():
            if member["role"] == "leader" and member["state"] == "running":
                return member["name"]
        return None

    def replica(self) -> str:
        return next(name for name in self.nodes if name != self.leader())

    def healthy(self) -> bool:
        """A running leader and a synchronous standby replicating from it."""
        roles = {m["role"] for m in self.members() if m["state"] in ("running", "streaming")}
        return {"leader", "sync_standby"} <= roles

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def healthy():
            for node in self.nodes.values():
                if node.patroni is not None and node.patroni.poll() is not None:
                    log = node.log.read_text()[-3000:]
                    raise RuntimeError(f"Patroni of {node.name} exited:\n{log}")
            return self.healthy()

        _wait(healthy, timeout, "a leader and a synchronous standby", interval=0.2)

    def wait_leader(self, not_name: str | None = None, timeout: float = 30.0) -> str:
        def other_leader():
            leader = self.leader()
            return leader if leader and leader != not_name else None

        return _wait(other_leader, timeout, "a new leader")

    def switchover(self, candidate: str | None = None) -> None:
        leader = self.leader()
        candidate = candidate or next(name for name in self.nodes if name != leader)
        subprocess.run(
            [
                self.patronictl,
                "-c",
                str(self.nodes[leader].config),
                "switchover",
                "--leader",
                leader,
                "--candidate",
                candidate,
                "--force",
            ],
            check=True,
            capture_output=True,
        )

    # How the service reaches it ---------------------------------------------------------------

    def url(self, dbname: str = "postgres", attrs: str = "read-write") -> str:
        """A libpq multi-host URL over both nodes: `read-write` finds the primary, `standby` or
        `prefer-standby` a replica."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes.values())
        return f"postgresql://postgres@{hosts}/{dbname}?target_session_attrs={attrs}"

    def leader_url(self, dbname: str = "postgres") -> str:
        return self.nodes[self.leader() or self.wait_leader()].url(dbname)

    def create_database(self, dbname: str) -> None:
        with psycopg.connect(self.leader_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')


class HAProxy:
    """Debian's haproxy in front of the cluster, set up as Patroni's documentation does: one port
    whose servers are checked with GET /primary on each node's REST API, one checked with GET
    /replica. Its runtime API (a unix socket, `command()`) lets a test hold a server's state.

    No `on-marked-down shutdown-sessions`: connections HAProxy made to a node outlive that node's
    demotion, which is what the service must cope with on its own (as behind PgBouncer)."""

    def __init__(self, cluster: HACluster, check_interval_ms: int = 500):
        self.port, self.replica_port = free_port(), free_port()
        self.dir = cluster.dir / "haproxy"
        self.dir.mkdir(exist_ok=True)
        self.socket = self.dir / "admin.sock"

        def servers() -> str:
            return "\n".join(
                f"    server {node.name} 127.0.0.1:{node.port} check port {node.rest_port}"
                for node in cluster.nodes.values()
            )

        listen = {"primary": self.port, "replica": self.replica_port}
        config = [
            "global",
            f"    stats socket {self.socket} mode 600 level admin",
            "defaults",
            "    mode tcp",
            "    timeout connect 1s",
            "    timeout check 1s",
            "    timeout client 30m",  # pooled connections sit idle for long
            "    timeout server 30m",
        ]
        for name, port in listen.items():
            config += [
                f"listen {name}",
                f"    bind 127.0.0.1:{port}",
                f"    option httpchk GET /{name}",
                "    http-check expect status 200",
                f"    default-server inter {check_interval_ms}ms fall 2 rise 1",
                servers(),
            ]
        (self.dir / "haproxy.cfg").write_text("\n".join(config) + "\n")
        log = (self.dir / "haproxy.log").open("w")
        self.process = subprocess.Popen(
            [_which("haproxy"), "-db", "-f", str(self.dir / "haproxy.cfg")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait(self.socket.exists, 10, "haproxy's admin socket")

    def url(self, dbname: str = "postgres", replica: bool = False) -> str:
        port = self.replica_port if replica else self.port
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"

    def command(self, line: str) -> str:
        """One command of HAProxy's runtime API, such as `disable health primary/n1`."""
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        return answer.decode()

    def state(self, backend: str, server: str) -> str:
        """UP or DOWN (or STARTING, STOPPING) as HAProxy sees the server now."""
        for line in self.command(f"show servers state {backend}").splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == backend and fields[3] == server:
                return {"0": "DOWN", "1": "STARTING", "2": "UP", "3": "STOPPING"}[fields[5]]
        raise KeyError(server)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# make run-ha ------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SCOPES = "users:read,users:write,users:credentials,events:read"


def main() -> None:
    """Starts a cluster and the service on it (migrated, with a client `local-dev` whose token
    is printed), says how to try a switchover, and stops everything on Ctrl-C."""
    import select
    import sys

    from dataservice.migrate import apply_migrations

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, or SIGTERM, ends the loop below and stops everything, also when started from a
    # shell that had SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    bin_dir = Path(sys.executable).parent
    cluster, service = HACluster(), None
    try:
        print(f"starting etcd and two Patroni nodes in {cluster.dir} ...", flush=True)
        cluster.start()
        cluster.create_database("dataservice")
        apply_migrations(cluster.leader_url("dataservice"))
        env = {
            **os.environ,
            "DATABASE_URL": cluster.url("dataservice"),
            "DATABASE_REPLICA_URL": cluster.url("dataservice", "prefer-standby"),
        }
        subprocess.run(
            [bin_dir / "dataservice", "clients", "create", "local-dev", "--scopes", SCOPES],
            env=env,
            check=True,
        )
        config = cluster.nodes["n1"].config
        print(
            f"""
DATABASE_URL={env["DATABASE_URL"]}
DATABASE_REPLICA_URL={env["DATABASE_REPLICA_URL"]}

Try it, with AUTH="Authorization: Bearer <the token above>" (see README.md):
  patronictl -c {config} list
  patronictl -c {config} switchover --force    # a planned switch to the other node
To lose a node, kill its Patroni and its postmaster at once:""",
            flush=True,
        )
        _print_kill_commands(cluster)
        print("then press Enter here to start it again (it rejoins as a replica).")
        print("Ctrl-C stops the service and the cluster.\n", flush=True)
        service = subprocess.Popen(
            [bin_dir / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            start_new_session=True,  # stopped by us, after Ctrl-C, with SIGTERM
        )
        announced: set[str] = set()
        stdin_open = True
        while service.poll() is None:
            gone = {n.name for n in cluster.nodes.values() if n.patroni.poll() is not None}
            for name in sorted(gone - announced):
                print(f"{name} is lost; press Enter to start it again", flush=True)
            announced = gone
            if not stdin_open:
                time.sleep(1.0)
            elif select.select([sys.stdin], [], [], 1.0)[0]:
                stdin_open = bool(sys.stdin.readline())
                for name in sorted(gone):
                    cluster.kill_node(name)  # whatever is left of it
                    cluster.start_node(name)
                    print(f"started {name} again", flush=True)
                if gone:
                    _print_kill_commands(cluster)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the rest
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping ...", flush=True)
        if service is not None and service.poll() is None:
            service.terminate()
            service.wait(30)
        cluster.destroy()


def _print_kill_commands(cluster: HACluster) -> None:
    time.sleep(1.0)  # a node started just now may not have its postmaster yet
    for node in cluster.nodes.values():
        pids = [str(pid) for pid in (node.patroni.pid, node.postmaster_pid()) if pid]
        print(f"  {node.name}: kill -KILL {' '.join(pids)}", flush=True)


if __name__ == "__main__":
    main()
