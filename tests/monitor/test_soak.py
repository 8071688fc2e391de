"""The soak benchmark's own checks, on a short run of the tiny model: every step has its log line and its frame,
and the run after the warm-up is reported in equal consecutive parts, the encoder's CPU included."""
from monitor.soak import SEGMENTS, checks, soak


def test_a_short_soak_passes_its_checks(tiny_model, reference_sizes, tmp_path):
    r = soak(str(tiny_model), steps=30, warmup=10, scene="expert", sessions=str(tmp_path), reference=reference_sizes)
    assert (r["log_lines"], r["video_frames"], r["dropped"]) == (30, 30, 0)
    assert r["steps_per_s"] > 0 and r["rss_warm_mb"] > 0
    memory, *counts = checks(r)  # memory growth says little over 20 steps; the counts must all pass
    assert "resident memory" in memory[0] and all(passed for _, passed in counts), counts
    parts = r["segments"]
    assert len(parts) == SEGMENTS and parts[0]["from"] == 10 and parts[-1]["to"] == 30
    assert all(a["to"] == b["from"] for a, b in zip(parts, parts[1:]))
    assert all(g["steps_per_s"] > 0 and g["cpu_ms_per_step"] > 0 for g in parts)
    assert sum(g["encoder_ms_per_step"] for g in parts) > 0  # ffmpeg's CPU, read while it runs
