"""experiments/quorum_tolerance.py in quick mode: the quorum's analytic bounds hold."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import quorum_tolerance  # noqa: E402


def test_quorum_tolerance_quick(tmp_path):
    df = quorum_tolerance.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "quorum_tolerance.csv").exists()
    assert (tmp_path / "quorum_tolerance.png").exists()
    committed = df["committed_share"] == 1.0
    assert (committed == (df["safe_bound"] & df["live_bound"])).all()
    assert (df.loc[df.faulty_share == 0, "committed_share"] == 1.0).all()
    assert (df.loc[~committed, "p2p_volume_kwh"] == 0).all()
