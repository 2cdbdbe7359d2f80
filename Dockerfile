# Game Night: `python -m bot` runs the bot, its HTTP server and the stream resolver in one
# process; `python -m bot web` the HTTP API alone. docker-compose.yml runs both on Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Voice: ffmpeg decodes the stream, libopus0 encodes Opus for Discord (discord.py[voice]).
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libopus0 \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir bot core storage && touch bot/__init__.py core/__init__.py storage/__init__.py \
    && pip install '.[mysql]' \
    && pip uninstall -y gamenight

COPY bot ./bot
COPY core ./core
COPY storage ./storage

# A real home: spotDL keeps its settings in ~/.spotdl.
RUN useradd --system --uid 10001 --create-home --home-dir /home/gamenight gamenight \
    && mkdir -p /app/data && chown gamenight /app/data
USER gamenight

# SQLite database (the default STORAGE_URL) lives here.
VOLUME ["/app/data"]

ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8000 \
    STORAGE_URL=sqlite:////app/data/gamenight.db
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthcheck' % os.environ.get('HTTP_PORT', '8000'), timeout=4)"

# Inside a container only 0.0.0.0 is reachable through a published port, and `--env-file .env`
# would override an ENV default with the .env's HTTP_HOST: so the entrypoint sets it last, for
# every command (`docker run IMAGE python -m bot web` and compose's `command:` keep it).
ENTRYPOINT ["env", "HTTP_HOST=0.0.0.0"]
CMD ["python", "-m", "bot"]
