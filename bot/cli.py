"""`python -m bot`'s sub-commands: the usage text and the routing to each one.

bot/__main__.py keeps only what runs the bot itself (`python -m bot` and `python -m bot web`).
"""

from __future__ import annotations

import sys

from bot import doctor, import_songs, index_cli
from bot.keyfile import new_key

USAGE = """usage: python -m bot [web | doctor ... | index ... | import-songs MYSQL_URL | keygen]
  (no arguments)  run the bot (settings from .env, see .env.example)
  web             run only the HTTP API, relay and resolver (no Discord gateway)
  doctor          check the settings and services, with the fix for each problem (--online)
  index           pre-resolve playlists into the stream cache (python -m bot index --help)
  import-songs    import video matches from the PWA's old MySQL song_cache table
  keygen          print a new TOKEN_ENCRYPTION_KEY"""

EXIT_USAGE = 2


def run_subcommand(argv: list[str]) -> int | None:
    """Run the sub-command `argv` names and return its exit status; None when `argv` runs the
    bot (no arguments, or `web`)."""
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "index":
        return index_cli.main(rest)
    if command == "doctor":
        return doctor.main(rest)
    if command == "import-songs":
        return import_songs.main(rest)
    if argv == ["keygen"]:
        print(new_key())  # a TOKEN_ENCRYPTION_KEY; works in the venv, no system packages
        return 0
    if argv in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if argv in ([], ["web"]):
        return None
    print(USAGE, file=sys.stderr)
    return EXIT_USAGE
