"""Versioned SQLite schema. Append new migrations; never edit one that has shipped.

The database's `PRAGMA user_version` records how many have been applied.
"""

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE links (
            discord_user_id INTEGER PRIMARY KEY,
            spotify_user_id TEXT NOT NULL,
            display_name TEXT NOT NULL,
            access_token_enc TEXT NOT NULL,
            refresh_token_enc TEXT NOT NULL,
            expires_at REAL NOT NULL,
            scopes TEXT NOT NULL,
            linked_at REAL NOT NULL,
            status TEXT NOT NULL
        )""",
        """CREATE TABLE oauth_states (
            state_hash TEXT PRIMARY KEY,
            discord_user_id INTEGER NOT NULL,
            guild_id INTEGER,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_at REAL
        )""",
        "CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at)",
        """CREATE TABLE sessions (
            guild_id INTEGER PRIMARY KEY,
            host_user_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            channel_id INTEGER,
            status_message_id INTEGER,
            snapshot TEXT,
            listen_token TEXT,
            host_active_at REAL NOT NULL DEFAULT 0
        )""",
        "CREATE UNIQUE INDEX sessions_by_listen_token ON sessions (listen_token)",
        """CREATE TABLE session_listeners (
            guild_id INTEGER NOT NULL REFERENCES sessions (guild_id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )""",
        """CREATE TABLE streams (
            track_id TEXT PRIMARY KEY,
            video_url TEXT NOT NULL,
            stream_url TEXT NOT NULL,
            expires_at REAL NOT NULL,
            resolved_at REAL NOT NULL,
            last_access REAL NOT NULL,
            title TEXT NOT NULL,
            duration_s REAL NOT NULL,
            score REAL NOT NULL
        )""",
        "CREATE INDEX streams_by_last_access ON streams (last_access)",
        "CREATE INDEX streams_by_expiry ON streams (expires_at)",
        """CREATE TABLE failures (
            track_id TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            retry_after REAL NOT NULL
        )""",
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
    ),
    # branch quota: rolling-window Spotify call counters and Retry-After / quota holds,
    # persisted so a restart does not reset the account's budget.
    (
        """CREATE TABLE counter_hits (
            name TEXT NOT NULL,
            at REAL NOT NULL
        )""",
        "CREATE INDEX counter_hits_by_name ON counter_hits (name, at)",
        """CREATE TABLE holds (
            name TEXT PRIMARY KEY,
            until REAL NOT NULL,
            reason TEXT NOT NULL
        )""",
    ),
    # branch quota2: named locks that span processes sharing the file (the indexer beside
    # the bot), for the per-user Spotify token refresh.
    (
        """CREATE TABLE named_locks (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
    ),
    # branch hostile2: pending links (a finished authorization waiting for its confirmation)
    # shared by every web process; the whole record is encrypted (it carries the tokens).
    (
        """CREATE TABLE pending_links (
            state_hash TEXT PRIMARY KEY,
            expires_at REAL NOT NULL,
            blob TEXT,
            taken_by TEXT
        )""",
        "CREATE INDEX pending_links_by_expiry ON pending_links (expires_at)",
    ),
    # branch streams2: the headers a stream URL was extracted with (User-Agent: googlevideo
    # refuses a URL fetched with another client's), sent again by the relay.
    ("ALTER TABLE streams ADD COLUMN http_headers TEXT NOT NULL DEFAULT ''",),
]
