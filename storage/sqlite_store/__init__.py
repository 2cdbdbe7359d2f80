"""The SQLite backend's stores, one module each; storage/sqlite.py puts them together."""
