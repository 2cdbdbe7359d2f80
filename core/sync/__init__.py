"""The sync engine: mirror the host's Spotify playback onto every listener's account.

Pure decisions, no I/O: state (`PlayerState`), clock (`Clock`, latency, landing position),
changes (what the host did), planner (one action per listener), failures (what an error
means), schedule (when to look again, drift budget), config (`EngineConfig`).

The asyncio side, one job per module:
 - engine.py      `SyncEngine`: one guild's loop; `step()` is one round;
 - listeners.py   `Listeners`: the listener command path (reads, commands, statuses);
   listener.py    `Listener` (memory of one listener) and `PositionAt` (send-time position);
 - lease.py       `GuildLease`: the guild's lease, kept by its own task, checked before sends;
 - reporter.py    `Reporter`: status edits and DMs, off the loop, through the bot's `Announcer`
                  (`PlaybackReport` is what the status message shows);
 - health.py      `SyncHealth`: storage write failures and loop liveness, for /healthcheck;
 - supervisor.py  `GuildEngines` (one engine per guild) and `SyncSupervisor` (starts, wakes
                  and stops them from the session watchers' events, rescans, lease releases).
"""
