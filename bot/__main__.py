"""`python -m bot`: validate settings and start Game Night."""

from __future__ import annotations

import sys

from bot.settings import SettingsError, configure_logging, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    print("Settings are valid; the bot itself arrives with the bot issue.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
