"""Tests for jambonz_lab.protocol.tts: the TtsQueue backpressure (protocol doc §2.10, §7.10)."""

from __future__ import annotations

from jambonz_lab.protocol.tts import MAX_TOKENS, TtsQueue, TtsState, split_tokens


def tokens(id_: int, text: str) -> tuple[str, dict[str, object]]:
    """The tts:tokens command for ``id_``."""
    return ("tts:tokens", {"id": id_, "tokens": text})


OK = {"status": "ok"}
FULL = {"status": "failed", "reason": "full"}
FLUSH = ("tts:flush", None)


def ok(id_: int) -> dict[str, object]:
    return {"id": id_, **OK}


def full(id_: int) -> dict[str, object]:
    return {"id": id_, **FULL}


def test_first_push_sent_at_once() -> None:
    """The first push is sent with id 1."""
    q = TtsQueue()
    assert q.state is TtsState.IDLE
    assert q.push("Hello ") == [tokens(1, "Hello ")]
    assert q.state is TtsState.WAITING


def test_one_in_flight() -> None:
    """Later pushes wait while one tts:tokens is in flight."""
    q = TtsQueue()
    q.push("a")
    assert q.push("b") == []
    assert q.push("c") == []
    assert q.queued == 3


def test_ok_releases_next_with_increasing_ids() -> None:
    """Each ok result releases the next chunk; ids increase by one."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    q.push("c")
    assert q.on_result(ok(1)) == [tokens(2, "b")]
    assert q.on_result(ok(2)) == [tokens(3, "c")]
    assert q.on_result(ok(3)) == []
    assert q.state is TtsState.IDLE
    assert q.queued == 0
    assert q.problems == []


def test_ids_keep_increasing_after_idle() -> None:
    """Ids are never reused, even after the queue went idle."""
    q = TtsQueue()
    q.push("a")
    q.on_result(ok(1))
    assert q.push("b") == [tokens(2, "b")]


def test_empty_push_ignored() -> None:
    """An empty string is not queued and takes no id."""
    q = TtsQueue()
    assert q.push("") == []
    assert q.push("a") == [tokens(1, "a")]


def test_full_pauses_and_keeps_item_at_head() -> None:
    """failed/full pauses the queue and keeps the refused chunk first."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    assert q.on_result(full(1)) == []
    assert q.state is TtsState.PAUSED
    assert q.queued == 2
    assert q.push("c") == []
    assert q.problems == []


def test_stream_resumed_resends_refused_chunk() -> None:
    """stream_resumed resends the refused chunk with its id, then continues."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    q.on_result(full(1))
    assert q.on_event("stream_resumed") == [tokens(1, "a")]
    assert q.state is TtsState.WAITING
    assert q.on_result(ok(1)) == [tokens(2, "b")]


def test_stream_paused_while_in_flight_blocks_next() -> None:
    """stream_paused while a chunk is in flight: its ok does not release the next."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    assert q.on_event("stream_paused") == []
    assert q.on_result(ok(1)) == []
    assert q.state is TtsState.PAUSED
    assert q.on_event("stream_resumed") == [tokens(2, "b")]


def test_stream_paused_blocks_push() -> None:
    """While paused, a push is queued, not sent."""
    q = TtsQueue()
    q.on_event("stream_paused")
    assert q.push("a") == []
    assert q.on_event("stream_resumed") == [tokens(1, "a")]


def test_resumed_when_idle_sends_nothing() -> None:
    """stream_resumed with nothing queued sends nothing."""
    assert TtsQueue().on_event("stream_resumed") == []


def test_user_interruption_clears() -> None:
    """user_interruption drops the queue and the in-flight chunk."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    q.on_event("stream_paused")
    assert q.on_event("user_interruption") == []
    assert q.queued == 0
    assert q.state is TtsState.IDLE
    assert q.push("c") == [tokens(3, "c")]


def test_other_events_ignored() -> None:
    """stream_open / stream_closed change nothing."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    assert q.on_event("stream_open") == []
    assert q.on_event("stream_closed") == []
    assert q.state is TtsState.WAITING
    assert q.queued == 2


def test_flush_alone_sent_at_once() -> None:
    """A flush with nothing before it goes out at once."""
    assert TtsQueue().flush() == [FLUSH]


def test_flush_waits_for_preceding_tokens() -> None:
    """A flush goes out only after the tokens before it were accepted."""
    q = TtsQueue()
    q.push("a")
    assert q.flush() == []
    assert q.on_result(ok(1)) == [FLUSH]
    assert q.state is TtsState.IDLE


def test_flush_then_next_tokens_in_one_pump() -> None:
    """After the flush marker the next chunk follows in the same release."""
    q = TtsQueue()
    q.push("a")
    q.flush()
    q.push("b")
    assert q.on_result(ok(1)) == [FLUSH, tokens(2, "b")]


def test_flush_not_sent_after_refused_tokens() -> None:
    """A flush behind a refused (full) chunk waits until that chunk is accepted."""
    q = TtsQueue()
    q.push("a")
    q.flush()
    assert q.on_result(full(1)) == []
    assert q.on_event("stream_resumed") == [tokens(1, "a")]
    assert q.on_result(ok(1)) == [FLUSH]


def test_clear_returns_tts_clear() -> None:
    """clear() drops everything and returns tts:clear."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    q.on_event("stream_paused")
    assert q.clear() == [("tts:clear", None)]
    assert q.queued == 0
    assert q.state is TtsState.IDLE


def test_mismatched_result_recorded_and_not_stalling() -> None:
    """A result for an unknown id is recorded; the real result still releases the next."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    assert q.on_result(ok(99)) == []
    assert q.problems == ["tts:tokens-result for id 99 matches nothing in flight"]
    assert q.on_result(ok(1)) == [tokens(2, "b")]


def test_result_when_idle_recorded() -> None:
    """A result with nothing in flight is recorded as a problem."""
    q = TtsQueue()
    assert q.on_result(ok(1)) == []
    assert q.problems == ["tts:tokens-result for id 1 matches nothing in flight"]


def test_late_result_after_interruption_recorded() -> None:
    """A result arriving after user_interruption matches nothing and is recorded."""
    q = TtsQueue()
    q.push("a")
    q.on_event("user_interruption")
    assert q.on_result(ok(1)) == []
    assert q.problems == ["tts:tokens-result for id 1 matches nothing in flight"]


def test_other_failure_drops_item_and_continues() -> None:
    """A failure other than full drops the chunk, records it, and sends the next."""
    q = TtsQueue()
    q.push("a")
    q.push("b")
    out = q.on_result({"id": 1, "status": "failed", "reason": "connection to deepgram failed"})
    assert out == [tokens(2, "b")]
    assert q.problems == ["tts:tokens id 1 failed: connection to deepgram failed"]
    assert q.state is TtsState.WAITING
    assert q.queued == 1


def test_failure_without_reason() -> None:
    """A failure without reason is recorded as unknown."""
    q = TtsQueue()
    q.push("a")
    assert q.on_result({"id": 1, "status": "failed"}) == []
    assert q.problems == ["tts:tokens id 1 failed: unknown"]
    assert q.state is TtsState.IDLE


def test_oversized_token_is_split_and_cannot_stall() -> None:
    """jambonz refuses buffer + chunk > 1000 even into an empty buffer (tts-streaming-buffer.js ~111),
    so one 2500-char push goes out as chunks of at most 1000, cut at whitespace, the text unchanged."""
    q = TtsQueue()
    text = ("word " * 500).rstrip()  # 2499 chars
    first = q.push(text)
    sent = [first[0][1]["tokens"]]
    while q.state is TtsState.WAITING:
        last = q._in_flight
        assert last is not None
        out = q.on_result(ok(last.id))
        sent += [c[1]["tokens"] for c in out if c[0] == "tts:tokens"]
    assert "".join(sent) == text
    assert all(len(s) <= MAX_TOKENS for s in sent) and len(sent) == 3
    assert all(s.endswith(" ") for s in sent[:-1])


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    """No whitespace to cut at: hard cuts of exactly MAX_TOKENS; short text is one chunk."""
    assert [len(p) for p in split_tokens("x" * 2001)] == [1000, 1000, 1]
    assert split_tokens("hi there") == ["hi there"] and split_tokens("") == []


def test_full_refusal_of_a_split_chunk_resumes_on_stream_resumed() -> None:
    """A refused (≤ 1000) chunk waits at the head and goes out again on stream_resumed."""
    q = TtsQueue()
    q.push("a" * 900)
    q.on_result(ok(1))
    assert q.push("b" * 200) == [tokens(2, "b" * 200)]
    assert q.on_result(full(2)) == []
    assert q.state is TtsState.PAUSED
    assert q.on_event("stream_resumed") == [tokens(2, "b" * 200)]
