"""benchmarks/spair_peers.py: the driver that runs benchmark processes in alternation and tabulates their JSON
lines (the peers' own timing scripts live outside the repository; here stand-in commands print known rates)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import spair_peers  # noqa: E402


def test_last_json_takes_the_last_object_line():
    output = 'log line\n{"train_img_s": 1.0}\nnoise {not json\n{"train_img_s": 2.0, "peak_rss_mib": 3}\n[1, 2]\n'
    assert spair_peers.last_json(output) == {"train_img_s": 2.0, "peak_rss_mib": 3}
    with pytest.raises(ValueError, match="no JSON line"):
        spair_peers.last_json("nothing here\n")


def test_table_medians_and_ratios_to_the_fastest_training_peer(monkeypatch, capsys, tmp_path):
    """Two stand-in peers (one process per round each) and a stand-in for tfobj's own entry, so the test runs no
    TensorFlow. Medians over rounds, ratios to the peer with the highest training rate."""
    def script(name, train, infer, rss):
        path = tmp_path / f"{name}.py"
        record = json.dumps({"train_img_s": train, "infer_img_s": infer, "peak_rss_mib": rss})
        path.write_text(f"print('warm-up')\nprint({record!r})\n")
        return [sys.executable, str(path)]

    monkeypatch.setattr(spair_peers, "tfobj_command", lambda *a, **k: script("tfobj", 300, 900, 1200))
    slow, fast = script("slow", 100, 400, 500), script("fast", 150, 300, 600)
    spair_peers.main(["--rounds", "2", "--peer", "slow=" + " ".join(slow), "--peer", "fast=" + " ".join(fast)])
    table = capsys.readouterr().out
    assert "ratios to the fastest-training peer, fast" in table
    assert "| tfobj SPAIR | 300.0 | 900.0 | 1200 | 2.00x | 3.00x | 2.00x |" in table
    assert "| slow | 100.0 | 400.0 | 500 | 0.67x | 1.33x | 0.83x |" in table


def test_malformed_peer_is_refused():
    with pytest.raises(SystemExit):
        spair_peers.main(["--peer", "no-command-here"])


def test_stat_max_takes_each_entrys_best_round(monkeypatch, capsys, tmp_path):
    """Stand-ins whose rates change from round to round (a counter file per entry): the median and the best round
    over three rounds, each entry on its own."""
    def script(name, trains):
        path, counter = tmp_path / f"{name}.py", tmp_path / f"{name}.count"
        path.write_text(
            "import json, pathlib\n"
            f"c = pathlib.Path({str(counter)!r})\n"
            "i = int(c.read_text()) if c.exists() else 0\n"
            "c.write_text(str(i + 1))\n"
            f"t = {trains!r}[i]\n"
            "print(json.dumps({'train_img_s': t, 'infer_img_s': 2 * t, 'peak_rss_mib': 100 + i}))\n")
        return [sys.executable, str(path)]

    for stat, expected in (("median", ("| tfobj SPAIR | 200.0 | 400.0 | 102 | 2.00x |", "| peer | 100.0 | 200.0 | 102 |")),
                           ("max", ("| tfobj SPAIR | 240.0 | 480.0 | 102 | 1.60x |", "| peer | 150.0 | 300.0 | 102 |"))):
        for counter in tmp_path.glob("*.count"):
            counter.unlink()
        monkeypatch.setattr(spair_peers, "tfobj_command", lambda *a, **k: script("tfobj", [240, 160, 200]))
        peer = script("peer", [100, 150, 60])
        spair_peers.main(["--rounds", "3", "--stat", stat, "--peer", "peer=" + " ".join(peer)])
        table = capsys.readouterr().out
        assert ("median of 3" if stat == "median" else "best of 3") in table
        for row in expected:
            assert row in table, table
