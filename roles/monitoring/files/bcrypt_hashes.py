"""bcrypt hashes of the web passwords, keeping a current hash that still matches.

The monitoring role runs this on the monitoring host (python3 -c, with the
request on stdin so no password shows in a process list or a log):

    {"rounds": 12, "users": {"admin": "<password>"}, "current": {"admin": "$2b$..."}}

and reads back {"admin": "$2b$..."}. A current hash that matches its password
is kept, so a second run changes nothing; a new password gets a new hash with
a fresh random salt. Needs python3-bcrypt (Debian) on the host.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping


def web_hashes(
    users: Mapping[str, str],
    current: Mapping[str, str],
    matches: Callable[[str, str], bool],
    new_hash: Callable[[str], str],
) -> dict[str, str]:
    """One hash per user: the current one when it matches, else a new one."""
    hashes: dict[str, str] = {}
    for user, password in users.items():
        known = current.get(user, "")
        hashes[user] = known if known and matches(password, known) else new_hash(password)
    return hashes


def main() -> None:
    import bcrypt

    request = json.load(sys.stdin)
    rounds = int(request.get("rounds", 12))

    def matches(password: str, known: str) -> bool:
        try:
            return bool(bcrypt.checkpw(password.encode(), known.encode()))
        except ValueError:  # not a bcrypt hash
            return False

    def new_hash(password: str) -> str:
        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode())

    current = request.get("current") or {}
    print(json.dumps(web_hashes(request["users"], current, matches, new_hash)))


if __name__ == "__main__":
    main()
