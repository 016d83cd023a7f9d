"""DU1's executability check inside a run: line limits curtail matched trades."""

import networkx as nx
import numpy as np

from dipi_abm import DIPIModel
from dipi_abm.physics.flows import LineModel

SMALL = dict(n_dpgc=6, n_users=30, hours=24, seed=4)


def test_no_limit_no_curtailment():
    m = DIPIModel(line_rating_margin=float("inf"), **SMALL).run()
    assert m.lines is None
    assert m.summary()["line_curtailed_kwh"] == 0.0


def test_tighter_limits_curtail_more_and_flows_stay_within_limits():
    curtailed = []
    for limit in (5000.0, 500.0, 100.0):
        m = DIPIModel(line_limit_kw=limit, **SMALL)
        for _ in range(12):
            m.step()
            c = m.contracts
            flows = m.lines.flows(m.state.bus[c.seller], m.state.bus[c.buyer], c.volume)
            assert np.all(np.abs(flows) <= limit * (1 + 1e-9) + 1e-9)
        curtailed.append(m.hourly_dataframe()["line_curtailed_kwh"].sum())
    assert curtailed[0] <= curtailed[1] <= curtailed[2] and curtailed[2] > 0


def test_edge_limit_attribute_overrides_the_default():
    g = nx.path_graph(6)
    nx.set_edge_attributes(g, 0.2, "r_ohm")
    g.graph["root"] = 0
    g.edges[2, 3]["limit_kw"] = 50.0
    m = DIPIModel(grid=g, **SMALL)
    assert m.lines is not None
    lm = LineModel.build(m.grid)
    assert np.isfinite(lm.limit_kw).sum() == 1
    m.run()
    h = m.hourly_dataframe()
    np.testing.assert_allclose(h.generation_kwh + h.grid_purchase_kwh,
                               h.load_kwh + h.grid_sale_kwh + h.curtailed_kwh, rtol=1e-9)
