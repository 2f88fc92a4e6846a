"""A real SSH git remote for the tests: OpenSSH's sshd on a loopback port, with key auth only.

git over SSH runs ``git-upload-pack`` and ``git-receive-pack`` on the server, exactly as a
forge's SSH endpoint does. The server accepts one generated client key for the current user;
its host key is generated too, so a client meets it for the first time, as the operator does.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


class SshServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.user = getpass.getuser()
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def _keygen(self, name: str) -> Path:
        key = self.folder / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
            check=True,
            capture_output=True,
        )
        return key

    def start(self) -> SshServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        host_key = self._keygen("host_ed25519")
        client_key = self._keygen("client_ed25519")
        (self.folder / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {host_key}\n"
            f"PidFile {self.folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.folder / 'authorized_keys'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\n"
            f"AllowUsers {self.user}\n"
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation
        log = (self.folder / "sshd.log").open("ab")
        self._process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen: {(self.folder / 'sshd.log').read_text()[-500:]}")

    @property
    def client_key(self) -> str:
        return (self.folder / "client_ed25519").read_text()

    def url(self, bare_repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare_repo.resolve()}"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None
