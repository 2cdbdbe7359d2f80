"""The sync engine: mirror the host's Spotify playback onto every listener's account.

Pure decisions live in small modules with no I/O (state, clock, changes, planner, failures,
schedule); the engine is the asyncio loop around them.
"""
