"""The sync engine: mirror the host's Spotify playback onto every listener's account.

Pure decisions live in small modules with no I/O (state, clock, changes, planner, failures,
schedule); the engine is the asyncio loop around them, `SyncEngines` keeps one per guild, and
`runner.SessionSync` starts, wakes and stops them from the session hooks.
"""
