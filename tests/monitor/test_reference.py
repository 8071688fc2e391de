"""The reference bank's cache in the model folder: reused while its key holds, rebuilt when the build settings or
the ONNX files change, or when the file is damaged."""
import os
import shutil

import numpy as np

from monitor import reference


def test_the_cache_is_reused_until_its_key_changes(tiny_model, tmp_path, monkeypatch):
    from export.engine import OnnxEngine

    folder = shutil.copytree(tiny_model, tmp_path / "model", ignore=shutil.ignore_patterns("reference.npz*"))
    builds = []
    build = reference.build_reference

    def counted(engine, episodes, steps, progress=None):
        builds.append((episodes, steps))
        return build(engine, episodes, steps, progress)

    monkeypatch.setattr(reference, "build_reference", counted)
    engine = OnnxEngine.from_folder(folder)
    first, where = reference.load_or_build(engine, 1, 20)
    assert where == str(folder / reference.CACHE) and builds == [(1, 20)]
    again, where = reference.load_or_build(engine, 1, 20)
    assert builds == [(1, 20)] and where == str(folder / reference.CACHE)  # read back, not rebuilt
    np.testing.assert_array_equal(again.z, first.z)
    np.testing.assert_array_equal(again.shuffle_bank, first.shuffle_bank)

    reference.load_or_build(engine, 1, 25)  # other build settings
    assert builds == [(1, 20), (1, 25)]

    encoder = folder / "encoder.onnx"  # a re-export: the ONNX file's time stamp moves
    stat = encoder.stat()
    os.utime(encoder, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    reference.load_or_build(OnnxEngine.from_folder(folder), 1, 25)
    assert len(builds) == 3

    (folder / reference.CACHE).write_bytes(b"not a bank")
    bank, where = reference.load_or_build(OnnxEngine.from_folder(folder), 1, 25)
    assert len(builds) == 4 and where == str(folder / reference.CACHE) and len(bank.z) == 6
