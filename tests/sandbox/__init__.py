"""The sandbox: a whole game night offline — fake Discord, Spotify and YouTube, the real bot.

`python -m tests.sandbox` (or `make sandbox`); see docs/SANDBOX.md. world.py starts it all,
night.py is the scripted evening (steps and what must follow from each), show.py prints it,
interactive.py keeps it running for a person to click through.
"""
