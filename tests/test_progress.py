"""The progress bar's estimate: the average time per sample so far, from the first chunk on."""

from sysnoise.progress import eta_text


def test_eta_is_the_average_so_far():
    assert eta_text(10.0, 0, 100) == ""  # nothing done: no estimate
    assert eta_text(10.0, 16, 100) == "eta 0:52"  # 10 s / 16 samples x 84 left = 52.5 s, rounded half even
    assert eta_text(30.0, 10, 2000) == "eta 1:39:30"  # 3 s each x 1990
    assert eta_text(5.0, 100, 100) == "done"
