"""Long waits: one updating line in a terminal, plain lines elsewhere (CI logs, pipes)."""

import io

from sagemaker_tools.progress import elapsed_text, waiting


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_one_line_rewritten_in_place_then_a_newline():
    stream, clock = io.StringIO(), Clock()
    with waiting("release: VALIDATE cs-1", stream=stream, terminal=True, clock=clock) as wait:
        wait.update("PREPARING")
        clock.now += 65
        wait.update("APPLYING")
    text = stream.getvalue()
    assert text == ("\r\x1b[Krelease: VALIDATE cs-1: PREPARING · 0s\r\x1b[Krelease: VALIDATE cs-1: APPLYING · 1m05s\n")


def test_a_log_gets_a_line_per_change_and_a_heartbeat_while_nothing_changes():
    stream, clock = io.StringIO(), Clock()
    with waiting("publish: x validating", stream=stream, terminal=False, clock=clock, heartbeat=300) as wait:
        for _ in range(4):  # every 2 minutes, the same status
            wait.update("InProgress")
            clock.now += 120
        wait.update("Completed")
    assert stream.getvalue().splitlines() == [
        "publish: x validating: InProgress · 0s",
        "publish: x validating: InProgress · 6m00s",  # 300 s after the last line: still alive
        "publish: x validating: Completed · 8m00s",
    ]


def test_a_pipe_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    stream = io.StringIO()  # isatty() is False
    with waiting("wait", stream=stream) as wait:
        wait.update("one")
    assert stream.getvalue() == "wait: one · 0s\n"


def test_elapsed_time_reads_as_seconds_minutes_or_hours():
    assert [elapsed_text(s) for s in (0, 59, 60, 3599, 3600, 7322)] == [
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "1h00m",
        "2h02m",
    ]
