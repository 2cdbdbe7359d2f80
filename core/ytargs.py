"""yt-dlp's `--extractor-args` syntax, parsed without importing yt-dlp (settings use it)."""

from __future__ import annotations


def parse_extractor_args(value: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """`IE:KEY=V1,V2;KEY2=V`, several separated by spaces, e.g.
    `youtube:player_client=default,mweb` -> {"youtube": {"player_client": ("default", "mweb")}}.

    Raises ValueError on anything else, so a typo is reported at start-up instead of being
    silently ignored by yt-dlp.
    """
    parsed: dict[str, dict[str, tuple[str, ...]]] = {}
    for spec in value.split():
        ie, sep, rest = spec.partition(":")
        if not sep or not ie or not rest:
            raise ValueError(spec)
        for pair in rest.split(";"):
            key, eq, values = pair.partition("=")
            if not eq or not key.strip():
                raise ValueError(spec)
            parsed.setdefault(ie.strip().lower(), {})[key.strip().replace("-", "_")] = tuple(
                v.strip() for v in values.split(",")
            )
    if not parsed:
        raise ValueError(value)
    return parsed
