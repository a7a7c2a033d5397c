import io

from holoscope.core.progress import TerminalProgress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_when_not_a_terminal():
    stream = io.StringIO()
    bar = TerminalProgress(10, stream=stream)
    for i in range(1, 11):
        bar(i)
    assert stream.getvalue() == ""


def test_draws_bar_with_eta_on_a_terminal():
    stream = FakeTerminal()
    bar = TerminalProgress(4, label="rendering ", stream=stream)
    bar(1)
    bar(4)
    out = stream.getvalue()
    assert "rendering [" in out and "1/4" in out and "4/4" in out and "ETA" in out
    assert out.endswith("\n"), "the finished bar ends its line"


def test_a_note_follows_the_eta():
    stream = FakeTerminal()
    bar = TerminalProgress(3, label="training ", stream=stream)
    bar(3, note="loss 0.01000 PSNR 20.00 dB")
    assert stream.getvalue().rstrip("\n").endswith("ETA 0:00 loss 0.01000 PSNR 20.00 dB")
