"""Collecting with several worker processes writes the same dataset as one process."""
import numpy as np

from scenes.collect import collect
from scenes.dataset import EpisodeDataset


def test_parallel_collection_writes_the_same_file_as_serial(tmp_path):
    mix = {"expert": 0.5, "random": 0.5}
    serial = collect(tmp_path / "serial.h5", 4, 12, 24, 7, mix, workers=1)
    parallel = collect(tmp_path / "parallel.h5", 4, 12, 24, 7, mix, workers=2)
    assert serial["frames"] == parallel["frames"] == 4 * 13
    with EpisodeDataset(tmp_path / "serial.h5") as a, EpisodeDataset(tmp_path / "parallel.h5") as b:
        assert a.num_episodes == b.num_episodes == 4
        np.testing.assert_array_equal(a.load_pixels(), b.load_pixels())
        np.testing.assert_array_equal(a.action, b.action)
        for e in range(4):
            assert a.rows(e) == b.rows(e)
