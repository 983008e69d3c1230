"""The bench's load generator (bench.httpload) against a small HTTP server in the same loop."""

import asyncio
from collections.abc import Awaitable, Callable

from bench.httpload import LoadStats, build_request, closed_loop, open_loop


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers 200 "ok" (keep-alive) to every request but GET /drop, which it drops unanswered."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /drop "):
                break
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _against_server(run: Callable[[int], Awaitable[LoadStats]]) -> LoadStats:
    async def main() -> LoadStats:
        server = await asyncio.start_server(_handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await run(port)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_a_closed_loop_sends_at_most_its_request_count_and_records_each_answer() -> None:
    seen: list[tuple[int, int, bytes]] = []

    def factory(index: int, seq: int) -> bytes:
        return build_request("POST", "/vote", "test", {}, b'{"option_ids": [1]}')

    def hook(seq: int, status: int, body: bytes, sent: float, done: float) -> None:
        assert done >= sent
        seen.append((seq, status, body))

    stats = _against_server(
        lambda port: closed_loop(
            label="votes",
            host="127.0.0.1",
            port=port,
            factory=factory,
            connections=3,
            duration_s=10.0,
            max_requests=10,
            hook=hook,
        )
    )

    assert stats.statuses == {200: 10}
    assert stats.errors == {}
    assert len(stats.latencies) == 10
    assert sorted(seq for seq, _status, _body in seen) == list(range(10))
    assert {(status, body) for _seq, status, body in seen} == {(200, b"ok")}
    assert stats.rps == 10 / stats.duration_s


def test_an_open_loop_sends_on_schedule_and_counts_what_was_not_answered_as_errors() -> None:
    def factory(index: int, seq: int) -> bytes:
        return build_request("GET", "/drop" if seq % 4 == 0 else "/results", "test")

    stats = _against_server(
        lambda port: open_loop(
            label="reads",
            host="127.0.0.1",
            port=port,
            factory=factory,
            rate=200.0,
            duration_s=0.1,
            pool_size=4,
            recycle_after=None,
        )
    )

    # 20 scheduled: every fourth dropped by the server, the others answered
    assert stats.statuses == {200: 15}
    assert stats.errors == {"connection lost": 5}
    assert stats.total == 20
    assert len(stats.latencies) == 15
    assert stats.duration_s >= 0.1
