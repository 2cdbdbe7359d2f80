// Listen-along page: follows the host's playback from the server's event stream.
//
// Each event carries the host's position_ms at time `at` and the server's clock
// (`server_time`), all in ms since the epoch. The host's position now is
// position_ms + (serverNow - at) while playing, where serverNow is this device's
// clock plus an offset estimated from the events (see offset()). The audio element is
// kept on that position: small drift is absorbed by nudging playbackRate, large drift
// (a seek, a new track, a slow start) by seeking.
"use strict";
(() => {
  const SEEK_MS = 700;       // drift beyond this seeks; below it the rate is nudged
  const CORRECT_MS = 2500;   // rate nudges aim to absorb the drift over about this long
  const QUIET_MS = 25;       // drift this small is left alone
  const MAX_NUDGE = 0.08;    // playbackRate stays within 1 ± this
  const OFFSET_SAMPLES = 30; // clock-offset samples kept (one per event, ~1 s apart)

  const $ = (id) => document.getElementById(id);
  const audio = $("audio");
  const button = $("play");
  const stateBox = $("state");

  let host = null;          // {trackId, positionMs, atMs, playing, durationMs}
  let loadedUrl = null;     // the stream URL in the audio element
  let listening = true;     // the listener's wish; autoplay may refuse it
  let seekLagMs = 120;      // how long a seek takes to resume playback, measured
  let seekStarted = null;
  let ended = false;
  let blocked = false;       // autoplay was refused: the page waits for a click
  let last = null;          // the latest state event, to re-word the status on audio events
  const offsets = [];

  // An event cannot arrive before it was sent, so server_time - receivedAt is the true
  // offset minus the network delay: the largest recent sample is the best estimate.
  function offset() {
    return offsets.length ? Math.max(...offsets) : 0;
  }

  function target() {
    if (!host) return 0;
    let position = host.positionMs;
    if (host.playing) position += Date.now() + offset() - host.atMs;
    if (host.durationMs) position = Math.min(position, host.durationMs);
    return Math.max(0, position);
  }

  function say(text, problem = false) {
    if (stateBox.textContent !== text) stateBox.textContent = text;
    stateBox.classList.toggle("problem", problem);
  }

  function clock(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function showButton() {
    if (ended) return;
    button.setAttribute("aria-pressed", String(listening));
    button.textContent = listening ? "⏸ Stop listening" : "▶ Start listening";
  }

  function showTrack(track) {
    const art = $("art");
    $("title").textContent = track ? track.name : host ? "Loading the track…" : "Waiting for the host…";
    $("artists").textContent = track ? [track.artists.join(", "), track.album].filter(Boolean).join(" · ") : "";
    if (track && track.art) {
      if (art.getAttribute("src") !== track.art) art.src = track.art;
      art.alt = `Cover of ${track.album || track.name}`;
      art.hidden = false;
      $("art-placeholder").hidden = true;
    } else {
      art.hidden = true;
      $("art-placeholder").hidden = false;
    }
    document.title = track ? `${track.name} · Listen along` : "Listen along · Game Night";
  }

  function showPeople(people) {
    const list = $("people");
    const rows = [`🎧 ${people.host} (host)`];
    for (const name of people.spotify) rows.push(`🟢 ${name} on Spotify`);
    rows.push(people.browser === 1 ? "🌐 1 person in the browser (you)"
      : `🌐 ${people.browser} people in the browser`);
    list.replaceChildren(...rows.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
  }

  function showProgress() {
    const duration = host ? host.durationMs : 0;
    const position = target();
    $("progress").value = duration ? Math.round((1000 * position) / duration) : 0;
    $("elapsed").textContent = clock(position);
    $("duration").textContent = clock(duration);
  }

  function explain(data) {
    const stream = data.stream;
    if (!data.playback) return say("The host isn't playing anything right now.");
    if (stream.status === "failed") {
      return say(`Can't play this track in the browser: ${stream.message} ` +
        "It will try again with the next track.", true);
    }
    if (stream.status === "resolving") return say("Finding the audio for this track…");
    if (!listening && blocked) return say("Your browser wants a click first: press Start listening.", true);
    if (!listening) return say("Press Start listening to hear the host's music.");
    if (!data.playback.is_playing) return say("The host paused.");
    // Say what this page does, not what the host does: silent until the audio really plays.
    if (Number.isFinite(audio.duration) && target() >= audio.duration * 1000) {
      return say("This track's audio ended early here; the next track will play.");
    }
    if (audio.paused || audio.readyState < 3) return say("Loading the audio…");
    const name = data.track ? `“${data.track.name}”` : "the host's track";
    say(`Playing ${name} in sync with the host.`);
  }

  function reword() {
    if (last && !ended) explain(last);
  }

  function onEvent(event) {
    const data = JSON.parse(event.data);
    offsets.push(data.server_time - Date.now());
    if (offsets.length > OFFSET_SAMPLES) offsets.shift();
    const p = data.playback;
    host = p && {
      trackId: p.track_id, positionMs: p.position_ms, atMs: p.at,
      playing: p.is_playing, durationMs: p.duration_ms,
    };
    if (event.type === "state") {
      last = data;
      showTrack(data.track);
      showPeople(data.people);
      explain(data);
    }
    // A new track stops the old one at once: while its stream is found ("resolving") there
    // is no URL, and the host is no longer playing what the audio element holds.
    const url = data.stream.status === "ready" ? data.stream.url : null;
    if (url !== loadedUrl) load(url, p);
    sync();
  }

  function load(url, playback) {
    loadedUrl = url;
    document.body.dataset.trackId = url && playback ? playback.track_id : "";
    if (url) {
      audio.src = url;
      audio.load();
    } else {
      audio.pause();
      audio.removeAttribute("src");
      audio.load();
    }
  }

  function seekTo(positionMs, ahead) {
    seekStarted = ahead ? performance.now() : null;
    audio.currentTime = (positionMs + (ahead ? seekLagMs : 0)) / 1000;
  }

  function start() {
    const playing = audio.play();
    if (playing) {
      playing.catch((error) => {
        if (error.name !== "NotAllowedError") return;
        listening = false;
        showButton();
        blocked = true;
        reword();
      });
    }
  }

  function sync() {
    showProgress();
    if (ended || !host || !loadedUrl || audio.readyState < 1) return;
    const t = target();
    if (!host.playing || !listening) {
      if (!audio.paused) audio.pause();
      audio.playbackRate = 1;
      if (!audio.seeking && Math.abs(audio.currentTime * 1000 - t) > 100) seekTo(t, false);
      return;
    }
    if (audio.seeking) return;
    if (Number.isFinite(audio.duration) && t >= audio.duration * 1000) return; // audio ran out
    const drift = audio.currentTime * 1000 - t;
    if (audio.paused || Math.abs(drift) > SEEK_MS) {
      audio.playbackRate = 1;
      seekTo(t, true);
      if (audio.paused) start();
      return;
    }
    const rate = Math.abs(drift) < QUIET_MS ? 1
      : Math.min(1 + MAX_NUDGE, Math.max(1 - MAX_NUDGE, 1 - drift / CORRECT_MS));
    if (audio.playbackRate !== rate) audio.playbackRate = rate;
  }

  audio.addEventListener("seeked", () => {
    if (seekStarted === null || audio.paused) return;
    const took = performance.now() - seekStarted;
    seekLagMs = Math.min(1000, Math.max(0, 0.5 * seekLagMs + 0.5 * took));
    seekStarted = null;
  });
  audio.addEventListener("loadedmetadata", sync);
  for (const name of ["playing", "pause", "waiting", "canplay"]) audio.addEventListener(name, reword);
  audio.addEventListener("error", () => {
    if (loadedUrl) say("The audio stream stopped working. Reload the page to try again.", true);
  });

  button.addEventListener("click", () => {
    listening = !listening;
    showButton();
    if (listening && host && host.playing && loadedUrl) audio.play().catch(() => {});
    if (!listening) audio.pause();
    blocked = false;
    sync();
    if (listening) reword();
    else say("Stopped. Press Start listening to rejoin.");
  });
  $("volume").addEventListener("input", (e) => { audio.volume = Number(e.target.value); });
  audio.volume = Number($("volume").value);

  const events = new EventSource(`${location.pathname.replace(/\/+$/, "")}/events`);
  events.addEventListener("state", onEvent);
  events.addEventListener("beacon", onEvent);
  events.addEventListener("ended", () => {
    ended = true;
    events.close();
    audio.pause();
    button.disabled = true;
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Game night over";
    say("The game night is over. Thanks for listening!");
  });
  events.addEventListener("error", () => {
    if (ended) return;
    if (events.readyState === EventSource.CLOSED) {
      say("This listen link has ended. Ask in Discord for a new one: /gamenight listen.", true);
    } else {
      say("Lost the connection — reconnecting…", true);
    }
  });

  showButton();
  setInterval(sync, 200);
})();
