"""`python -m tests.sandbox` (`make sandbox`): a whole game night offline, watched live.

Exit status: 0 the scripted night went as expected, 1 a step failed (named on the last lines),
2 bad options. See docs/SANDBOX.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from tests import netguard
from tests.sandbox.interactive import serve
from tests.sandbox.night import SCRIPT, Night, StepFailed
from tests.sandbox.show import Plain, reporter
from tests.sandbox.world import Options, Sandbox


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sandbox",
        description="Play a scripted game night against fake Discord, Spotify and YouTube, "
        "with the real bot in between; no account or network needed.",
    )
    parser.add_argument("--listeners", type=int, default=None, help="listeners (default 4)")
    parser.add_argument(
        "--latency",
        type=float,
        default=None,
        metavar="MS",
        help="injected Spotify round-trip latency in ms, ±25%% jitter (default 60)",
    )
    parser.add_argument("--jitter", type=float, default=None, metavar="MS")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fast settings for tests: 3 listeners, 20 ms latency, 0.5 s polls, 2 s drift checks",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="how long a listener may take to follow the host (default: from the settings)",
    )
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="keep running after the script: print the URLs and take commands on stdin",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="the bot's HTTP port (default: a free one); with --interactive the examples in "
        "docs/HTTP_API.md run verbatim against --port 8000",
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain lines even on a terminal (the default off one)"
    )
    parser.add_argument(
        "--break-follower",
        action="store_true",
        help="(to test this harness) the first listener's Spotify refuses every play command",
    )
    parser.add_argument("--log-level", default="WARNING", help="the bot's log level")
    args = parser.parse_args(argv)
    quick = args.quick
    options = Options(
        listeners=args.listeners if args.listeners is not None else (3 if quick else 4),
        latency_ms=args.latency if args.latency is not None else (20.0 if quick else 60.0),
        jitter_ms=args.jitter,
        poll_interval_s=0.5 if quick else 1.0,
        drift_check_s=2.0 if quick else 5.0,
        timeout_s=args.timeout,
        break_follower=args.break_follower,
        http_port=args.port,
    )
    if args.port is not None and not 0 < args.port < 65536:
        parser.error("--port must be a TCP port (1-65535)")
    if options.listeners < 1 or options.latency_ms < 0:
        parser.error("--listeners must be at least 1 and --latency not negative")
    return args, options


async def play(options: Options, show: Plain, *, interactive: bool) -> int:
    started = time.monotonic()
    async with Sandbox.open(options) as box:
        show.say(
            f"Game Night sandbox: host + {len(box.listeners)} listeners "
            f"({', '.join(f'{p.name}: {p.kind}' for p in box.listeners)}); Spotify latency "
            f"{options.latency_ms:.0f}±{options.jitter:.0f} ms; polls every "
            f"{options.poll_interval_s:g} s, listener checks every {options.drift_check_s:g} s; "
            f"bot ready in {time.monotonic() - started:.1f} s"
        )
        night = Night(box)
        failure: str | None = None
        # Interactive: the game night stays on (no final /gamenight stop) for a person to watch.
        script = SCRIPT[:-1] if interactive else SCRIPT
        async with show.running(box):
            for index, step in enumerate(script, 1):
                night.step = step.title
                show.step(index, len(script), step.title)
                began = time.monotonic()
                try:
                    outcome = await step.run(night)
                except StepFailed as error:
                    failure = f"step {index} ({step.title}) failed: {error}"
                    show.failed(step.title, str(error))
                    break
                await show.passed(box, step.title, outcome, time.monotonic() - began)
        show.figures(night.figures)
        if netguard.BLOCKED:
            failure = f"something tried to leave this machine: {netguard.BLOCKED}"
        show.say(f"total {time.monotonic() - started:.1f} s")
        if failure is not None:
            show.say(f"SANDBOX FAILED: {failure}")
        else:
            show.say("SANDBOX OK: the scripted game night went as expected")
        if interactive:
            await serve(box, show)
        return 1 if failure is not None else 0


def main(argv: list[str] | None = None) -> int:
    args, options = parse(argv)
    netguard.install()  # the sandbox never needs the internet; prove it
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("discord.client").setLevel(logging.ERROR)  # no voice support: not needed
    show = reporter(plain=args.plain or args.interactive)
    try:
        return asyncio.run(play(options, show, interactive=args.interactive))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
