"""The engine's knobs, in one frozen value (built from Settings by bot/sync.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.sync.planner import SyncConfig
from core.sync.schedule import DriftConfig, PollConfig, QuotaConfig


@dataclass(frozen=True)
class EngineConfig:
    poll: PollConfig = field(default_factory=PollConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    call_timeout_s: float = 3.0  # per Spotify call; a listener past it is retried later
    host_idle_timeout_s: float = 1800.0  # 0 disables
    status_interval_s: float = 3.0  # at most one status message edit this often
    persist_interval_s: float = 10.0  # snapshot written at least this often (and on changes)
    lease_ttl_s: float = 1.5  # a dead process's guilds move on within about this
    fanout_wait_s: float = 1.0  # a round waits this long for its commands, then moves on
    report_timeout_s: float = 5.0  # a status edit or DM taking longer is dropped
    probe_interval_s: float = 1.0  # while listeners back off, try one of them this often
    quota: QuotaConfig = field(default_factory=QuotaConfig)  # with a governor (host_signal.py)
