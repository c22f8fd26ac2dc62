import numpy as np

from vidray.stages.shots import histogram_distance, longest_pause, shot_bounds


def test_longest_pause_avoids_words() -> None:
    words = [{"start": 1.0, "end": 2.0}, {"start": 2.2, "end": 3.0}, {"start": 5.0, "end": 6.0}]
    assert longest_pause(words, 1.5, 6.5) == 4.0  # the gap 3.0–5.0
    assert longest_pause([], 3.0, 6.0) == 4.5


def test_cuts_where_colours_change() -> None:
    red, blue = np.zeros(64), np.zeros(64)
    red[0], blue[5] = 1.0, 1.0
    assert histogram_distance(red, blue) == 1.0 and histogram_distance(red, red) == 0.0
    words = [{"start": 4.0, "end": 5.0}, {"start": 8.0, "end": 8.5}]
    bounds = shot_bounds([1.5, 4.5, 7.5, 10.5], [red, red, blue, blue], 12.0, words, threshold=0.5)
    # the cut falls between 4.5 and 7.5, in the pause 5.0–7.5 rather than mid-word
    assert bounds == [[0.0, 6.25], [0.0, 6.25], [6.25, 12.0], [6.25, 12.0]]
