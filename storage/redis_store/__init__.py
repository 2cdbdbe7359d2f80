"""The Redis backend's stores, one module each; storage/redis_backend.py puts them together."""
