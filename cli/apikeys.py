"""The simulator's API key pair for `./hftlive up --strategy`: made once into .hftlive/secrets (git-ignored)
and given to both sides, the simulator (the exchange) and the connector, as compose secrets."""
from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from .versions import ROOT, runtime_facts

FOLDER = ROOT / ".hftlive" / "secrets"
# compose.yaml's secrets: what each file is mounted as, and where a container finds it.
KEY, SECRET = "bybit_api_key", "bybit_api_secret"
MOUNTED = Path("/run/secrets")
ALPHABET = string.ascii_letters + string.digits   # Bybit's keys are alphanumeric: 18 and 36 characters
LENGTHS = {KEY: 18, SECRET: 36}


@dataclass(frozen=True)
class KeyPair:
    key_file: Path
    secret_file: Path

    @property
    def key(self) -> str:
        return self.key_file.read_text().strip()

    def settings(self) -> dict[str, str]:
        """compose.yaml's settings that give this pair to the connector and the simulator. The key may be in
        the simulator's environment (an API key is no secret); the secret travels only as a file."""
        return {"BYBIT_API_KEY_FILE": str(self.key_file), "BYBIT_API_SECRET_FILE": str(self.secret_file),
                "SIM_API_KEY": self.key, "SIM_API_SECRET_FILE": str(MOUNTED / SECRET)}


def simulator_pair(folder: Path | None = None) -> KeyPair:
    """The pair in `folder` (FOLDER), made the first time (or when a file is missing or empty)."""
    folder = folder or FOLDER
    folder.parent.mkdir(mode=0o700, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    files = {name: folder / name for name in LENGTHS}
    if not all(path.is_file() and path.read_text().strip() for path in files.values()):
        for name, path in files.items():
            path.unlink(missing_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write("".join(secrets.choice(ALPHABET) for _ in range(LENGTHS[name])))
    for path in files.values():
        readable_by_the_images(path)
    return KeyPair(files[KEY], files[SECRET])


def readable_by_the_images(path: Path) -> None:
    """Compose mounts a secret file with its host owner and mode, and the containers run as HFTLIVE_UID:
    as root, give the file to that user (0600); otherwise make it 0644, its 0700 folder keeping other
    users of this host out."""
    if os.geteuid() == 0:
        uid = int(runtime_facts()["HFTLIVE_UID"])
        os.chown(path, uid, uid)
        os.chmod(path, 0o600)
    else:
        os.chmod(path, 0o644)
