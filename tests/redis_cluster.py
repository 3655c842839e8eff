"""A Redis Cluster of our own on loopback ports: three masters, each with a replica, in a
temporary directory, for the tests (and benches) that run the store on a cluster. Nothing of
the machine's own Redis is touched; ``stop`` ends every node it started.

    python -m tests.redis_cluster     # start one, print its URL; Ctrl-C or SIGTERM stops it
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

#: A short node timeout: a stopped master is judged failed, and its replica promoted, in ~1 s.
NODE_TIMEOUT_MS = 500


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    """``count`` free ports whose cluster bus ports (port + 10000) are free too."""
    while True:
        base = random.randrange(21000, 29000, 10)
        ports = list(range(base, base + count))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports


@dataclass
class LocalCluster:
    masters: int = 3
    replicas: int = 1
    ports: list[int] = field(default_factory=list)
    _procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _dir: str = ""

    @property
    def url(self) -> str:
        """Every node, as REDIS_URL may name them: the store finds the cluster while any is up."""
        return ",".join(f"redis://127.0.0.1:{port}/0" for port in self.ports)

    def start(self) -> LocalCluster:
        self._dir = tempfile.mkdtemp(prefix="tq-cluster-")
        self.ports = _ports(self.masters * (1 + self.replicas))
        for port in self.ports:
            self._launch(port)
        for port in self.ports:
            self._wait(lambda p=port: self.cli(p, "ping") == "PONG")
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(  # noqa: S603 - redis-cli, our arguments
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.wait_ok()
        # Replicas first copy their master in full: until then a failover would lose it all.
        for port in self.ports:
            self._wait(lambda p=port: self.replication(p).get("master_link_status", "up") == "up")
        return self

    def _launch(self, port: int) -> None:
        self._procs[port] = subprocess.Popen(  # noqa: S603 - redis-server, our arguments
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
             # A replica that lost its master promotes itself however stale it is: the
             # failover test wants the promotion, and the rows repair what it lacks.
             "--cluster-replica-validity-factor", "0",
             "--dir", self._dir, "--logfile", f"redis-{port}.log"],
            cwd=self._dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def cli(self, port: int, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - redis-cli, our arguments
            ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()

    def _wait(self, ready, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError("the local Redis Cluster did not get ready")
            time.sleep(0.1)

    def alive(self) -> list[int]:
        return [p for p, proc in self._procs.items() if proc.poll() is None]

    def wait_ok(self) -> None:
        """Until every running node says the cluster is ok and agrees on its masters."""

        def ok() -> bool:
            live = self.alive()
            if not all("cluster_state:ok" in self.cli(p, "cluster", "info") for p in live):
                return False
            views = {frozenset(self.masters_of(p)) for p in live}
            return len(views) == 1

        self._wait(ok)

    def masters_of(self, port: int) -> list[int]:
        """The live masters holding slots, as node ``port`` sees them."""
        masters = []
        for line in self.cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                masters.append(int(fields[1].split("@")[0].split(":")[1]))
        return masters

    def node_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot now."""
        port = self.alive()[0]
        slot = int(self.cli(port, "cluster", "keyslot", key))
        for line in self.cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split("@")[0].split(":")[1])
        raise LookupError(key)

    def replica_of(self, master: int) -> int:
        node_id = self.cli(master, "cluster", "myid")
        for port in self.alive():
            if port != master and self.cli(port, "cluster", "myid") != node_id:
                role = self.cli(port, "role").splitlines()
                if role and role[0] == "slave" and int(role[2]) == master:
                    return port
        raise LookupError(master)

    def wait_synced(self, master: int, replica: int) -> None:
        """Until ``replica`` has everything ``master`` wrote so far."""

        target = int(self.replication(master)["master_repl_offset"])

        def synced() -> bool:
            info = self.replication(replica)
            up = info.get("master_link_status") == "up"
            return up and int(info.get("slave_repl_offset", "-1")) >= target

        self._wait(synced)

    def replication(self, port: int) -> dict[str, str]:
        lines = self.cli(port, "info", "replication").splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def wait_master(self, port: int) -> None:
        """Until ``port`` is a master that every live node agrees on."""
        self._wait(lambda: self.cli(port, "role").splitlines()[:1] == ["master"])
        self.wait_ok()

    def pause(self, port: int) -> None:
        self._procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self._procs[port].send_signal(signal.SIGCONT)

    def kill(self, port: int) -> None:
        proc = self._procs[port]
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._procs.clear()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _stop_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # a plain kill stops the nodes too
    with LocalCluster() as cluster:
        print(cluster.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
