"""The training log's last lines, as the Train page shows them for a failed run (core.store.launcher.log_tail)."""

from core.store import launcher


def test_the_tail_is_the_last_lines_and_a_missing_log_is_none(tmp_path):
    assert launcher.log_tail(tmp_path) is None
    (tmp_path / launcher.LOG_NAME).write_text("".join(f"line {i}\n" for i in range(100)))
    assert launcher.log_tail(tmp_path, lines=3) == "line 97\nline 98\nline 99\n"
    (tmp_path / launcher.LOG_NAME).write_bytes(b"")
    assert launcher.log_tail(tmp_path) == ""


def test_a_huge_log_is_read_only_at_its_end_and_a_cut_line_is_dropped(tmp_path):
    line = "x" * 99 + "\n"
    (tmp_path / launcher.LOG_NAME).write_bytes(b"\xff\xfe" + (line * 10_000).encode() + b"Traceback: boom\n")
    tail = launcher.log_tail(tmp_path, lines=10_000)
    assert tail.endswith("Traceback: boom\n")
    assert len(tail) <= launcher.LOG_TAIL_BYTES and set(tail.splitlines()[:-1]) == {"x" * 99}
