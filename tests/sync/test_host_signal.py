"""HostSignal: where each round's host state comes from, and when the next read is due."""

from __future__ import annotations

from core.presence import Listening, Presence, PresenceBoard
from core.spotify.quota import CallPriority, QuotaGovernor
from core.sync.host_signal import HostSignal
from core.sync.schedule import PollConfig, QuotaConfig, RatePressure
from core.sync.state import PlayerState

A, B = "A" * 22, "B" * 22
HOST = 7


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def signal(board: PresenceBoard | None, clock: Clock, wakes: list[int]) -> HostSignal:
    governor = QuotaGovernor(2500, clock=clock)
    return HostSignal(
        board,
        governor,
        wake=lambda: wakes.append(1),
        poll=PollConfig(),
        quota=QuotaConfig(),
        clock=clock,
        monotonic=clock,
    )


def test_rounds_between_reads_do_not_put_the_paced_poll_off() -> None:
    clock, wakes = Clock(), []
    s = signal(None, clock, wakes)
    s.follow(HOST)
    look = s.look(None, clock.now)
    assert look.read is CallPriority.COMMAND  # the host must be known first
    host = s.settle(look, PlayerState(A, 30_000, True, clock.now, 300_000), clock.now)
    poll = s.next_delay(host, clock.now, RatePressure())
    assert poll > 5
    for _ in range(int(poll // 4)):  # rounds woken by lease renewals, joins ...
        clock.now += 4
        assert host is not None
        assert s.look(host, clock.now).read is None
        s.next_delay(host.moved_to(clock.now), clock.now, RatePressure())
    clock.now = 1_000.0 + poll
    assert s.look(host, clock.now).read is CallPriority.SAFETY


def test_a_presence_change_wakes_and_is_confirmed_by_one_read() -> None:
    clock, wakes = Clock(), []
    board = PresenceBoard()
    board.available = True
    s = signal(board, clock, wakes)
    s.follow(HOST)
    host = PlayerState(A, 30_000, True, clock.now, 300_000)
    board.update(Presence(HOST, Listening(A, "a", (), "", 300_000, 30_000), clock.now))
    assert wakes and s.presence
    assert s.look(host, clock.now).read is None  # it says what we know: no read
    clock.now += 10
    board.update(Presence(HOST, Listening(B, "b", (), "", 200_000, 500), clock.now))
    look = s.look(host, clock.now)
    assert look.read is CallPriority.COMMAND and look.hint is not None
    assert look.hint.track_id == B
    # The read still shows the old track (read lag): the presence wins, a re-read follows.
    stale = PlayerState(A, 40_000, True, clock.now, 300_000)
    assert s.settle(look, stale, clock.now) == look.hint
    board.update(Presence(HOST, None, clock.now))  # paused
    paused = s.look(look.hint, clock.now)
    assert paused.hint is not None and not paused.hint.is_playing


def test_a_host_playing_without_presence_is_polled() -> None:
    clock, wakes = Clock(), []
    board = PresenceBoard()
    board.available = True
    s = signal(board, clock, wakes)
    s.follow(HOST)
    board.update(Presence(HOST, Listening(A, "a", (), "", 300_000, 30_000), clock.now))
    assert s.presence
    board.update(Presence(HOST, None, clock.now))
    paused = PlayerState(A, 30_000, False, clock.now, 300_000)
    assert s.look(paused, clock.now).read is None  # the pause, as presence told it
    clock.now += 60
    look = s.look(paused, clock.now)  # the poll that was due
    s.settle(look, PlayerState(B, 1_000, True, clock.now, 200_000), clock.now)  # a read
    assert look.read is not None and not s.presence  # Discord is not telling: poll


def test_a_listener_presence_on_another_track_makes_them_a_suspect_until_read() -> None:
    clock, wakes = Clock(), []
    board = PresenceBoard()
    board.available = True
    s = signal(board, clock, wakes)
    s.follow(HOST)
    kim, mo, stranger = 11, 12, 13
    s.expect({kim: A, mo: A})
    board.update(Presence(kim, Listening(A, "a", (), "", 300_000, 1_000), clock.now))
    board.update(Presence(stranger, Listening(B, "b", (), "", 200_000, 0), clock.now))
    board.update(Presence(mo, None, clock.now))  # paused or closed: Discord cannot tell
    assert not wakes and not s.suspected  # agreeing, silent, or not a listener: free
    board.update(Presence(kim, Listening(B, "b", (), "", 200_000, 0), clock.now))
    assert wakes and s.suspected == {kim}
    assert s.suspects(lambda uid: False) == set()  # still settling after our command: kept
    assert s.suspects(lambda uid: True) == {kim}
    assert s.suspects(lambda uid: True) == set()  # once each
    board.update(Presence(mo, Listening(B, "b", (), "", 200_000, 0), clock.now))
    board.update(Presence(mo, Listening(A, "a", (), "", 300_000, 0), clock.now))
    assert not s.suspected  # a late presence from before our command, then the right one
