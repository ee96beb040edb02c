"""`make run` as a newcomer runs it: as a user other than root, whose PostgreSQL is a private
cluster under var/postgres. What make run started it stops when interrupted; a cluster that
was already running stays.

The real Makefile and .ci/postgres.sh run, in a copy of this checkout that the user owns. As
root that user is a system account made here when missing (`ds-make-run`, its home
/var/lib/ds-make-run): PostgreSQL refuses to run as root, and root's Python is out of other
users' reach (/root is private), so its copy gets a venv of its own from the system's python3,
made by make itself on the first run and kept there for the next runs. One run of this test at
a time on a machine (a lock on that copy). Its cluster listens on a free port
(PRIVATE_POSTGRES_PORT), as anyone's make run on the machine may hold the default, 55432.
"""

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .private_cluster import free_port
from .support import request

ROOT = Path(__file__).parent.parent
USER = "ds-make-run"
# What the user's environment keeps of ours: how TLS is reached (pip installs the venv). No
# locale: a bare login may have none, and make run must not depend on it.
KEPT = ("CERT", "CA_BUNDLE", "PROXY")


def account() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--home-dir", f"/var/lib/{USER}",
             "--shell", "/usr/sbin/nologin", USER],
            check=True,
        )  # fmt: skip
        return pwd.getpwnam(USER)


def copy_checkout(target: Path, owner: pwd.struct_passwd) -> None:
    """This checkout's files (committed or not) into `target`; files whose content is the same
    keep their time, so make sees the venv there up to date when setup.cfg did not change."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    wanted = {name for name in listed if name and (ROOT / name).is_file()}
    for name in wanted:
        source, copy = ROOT / name, target / name
        if not copy.is_file() or copy.read_bytes() != source.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy)
    for path in target.rglob("*"):
        relative = path.relative_to(target)
        made_here = relative.parts[0] in (".venv", "var") or relative.parts[0].endswith(".egg-info")
        if made_here or "__pycache__" in relative.parts:
            continue
        if path.is_file() and str(relative) not in wanted:
            path.unlink()
    subprocess.run(["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", target], check=True)


class MakeRun:
    """`make run` and `.ci/postgres.sh` as the account, in its copy of the checkout."""

    def __init__(self, owner: pwd.struct_passwd, checkout: Path, postgres_port: int, log: Path):
        self.owner, self.checkout, self.log = owner, checkout, log
        self.port = free_port()
        self.env = {
            name: value for name, value in os.environ.items() if any(k in name for k in KEPT)
        }
        self.env |= {
            "HOME": owner.pw_dir,
            "USER": owner.pw_name,
            "LOGNAME": owner.pw_name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PRIVATE_POSTGRES_PORT": str(postgres_port),
        }

    def _as_owner(self) -> dict:
        if os.geteuid() != 0:
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}

    def postgres(self, mode: str) -> int:
        return subprocess.run(
            ["bash", ".ci/postgres.sh", mode], cwd=self.checkout, env=self.env,
            capture_output=True, timeout=120, **self._as_owner(),
        ).returncode  # fmt: skip

    def postmaster(self) -> int:
        pid_file = self.checkout / "var" / "postgres" / "data" / "postmaster.pid"
        return int(pid_file.read_text().split()[0])

    def start(self) -> subprocess.Popen:
        """`make run` in a session of its own, as from a terminal; returns once it serves."""
        with self.log.open("w") as log:
            process = subprocess.Popen(
                ["make", "run"], cwd=self.checkout, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, **self._as_owner(),
            )  # fmt: skip
        # The first run on a machine makes the venv (pip): minutes; later ones take seconds.
        deadline = time.monotonic() + 600
        while True:
            try:
                if request(f"http://127.0.0.1:{self.port}/ready")[0] == 200:
                    return process
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):  # make may have exited
                    os.killpg(process.pid, signal.SIGKILL)
                pytest.fail("make run did not serve:\n" + self.log.read_text())
            time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def in_session(session: int) -> list[int]:
    """The processes left in a session (make run's: make, its shell, gunicorn and its workers)."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            left.append(int(stat.parent.name))
    return left


@pytest.fixture(scope="module")
def checkout():
    """The account, its copy of this checkout with no PostgreSQL cluster yet, as in a fresh clone
    (the venv stays from earlier runs), and a port for that cluster; held for this module."""
    owner = account()
    home = Path(owner.pw_dir)
    if os.geteuid() != 0:
        home = Path(os.environ.get("XDG_CACHE_HOME", home / ".cache")) / "dataservice"
        home.mkdir(parents=True, exist_ok=True)
    with (home / "make-run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        copy = home / "make-run"
        copy_checkout(copy, owner)
        postgres_port = free_port()
        MakeRun(owner, copy, postgres_port, Path(os.devnull)).postgres("stop")  # left running
        shutil.rmtree(copy / "var", ignore_errors=True)
        yield owner, copy, postgres_port


@pytest.fixture
def make_run(checkout, tmp_path):
    runner = MakeRun(*checkout, tmp_path / "make-run.log")
    yield runner
    runner.postgres("stop")


def ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)  # the terminal signals the whole foreground group


def sigterm(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGTERM)  # to make alone, as a supervisor would


@pytest.mark.parametrize("interrupt", [ctrl_c, sigterm])
def test_make_run_stops_the_postgresql_it_started(make_run, interrupt):
    assert make_run.postgres("running") != 0
    process = make_run.start()
    postmaster = make_run.postmaster()
    assert alive(postmaster)
    interrupt(process)
    process.wait(timeout=60)
    output = make_run.log.read_text()
    assert "stops when make run ends" in output
    assert not alive(postmaster), "make run left its PostgreSQL running:\n" + output
    assert make_run.postgres("running") != 0
    assert in_session(process.pid) == [], output  # gunicorn stopped too


def test_make_run_leaves_a_postgresql_it_found_running(make_run):
    assert make_run.postgres("run") == 0  # started before, by hand
    postmaster = make_run.postmaster()
    process = make_run.start()
    ctrl_c(process)
    process.wait(timeout=60)
    output = make_run.log.read_text()
    assert "stops when make run ends" not in output
    assert in_session(process.pid) == [], output
    assert alive(postmaster) and make_run.postgres("running") == 0
    assert make_run.postgres("stop") == 0
    assert not alive(postmaster)
