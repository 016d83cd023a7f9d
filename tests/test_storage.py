"""Optional storage: DPGC batteries firm up commitments (docs/model.md section 1)."""

import numpy as np
import pytest

from dipi_abm import ConfigError, DIPIModel

SMALL = dict(n_dpgc=10, n_users=40, hours=96, seed=2)


def test_energy_balance_counts_the_battery_and_soc_stays_in_bounds():
    m = DIPIModel(storage_share=1.0, **SMALL)
    for _ in range(96):
        m.step()
        assert np.all(m.soc_kwh >= -1e-9) and np.all(m.soc_kwh <= m.storage_kwh + 1e-9)
    h = m.hourly_dataframe()
    np.testing.assert_allclose(
        h.generation_kwh + h.grid_purchase_kwh + h.storage_discharge_kwh,
        h.load_kwh + h.grid_sale_kwh + h.curtailed_kwh + h.storage_charge_kwh, rtol=1e-9)
    assert h.storage_charge_kwh.sum() > 0 and h.storage_discharge_kwh.sum() > 0


def test_batteries_reduce_dpgc_breaches_and_only_dpgcs_get_them():
    without = DIPIModel(**SMALL).run().hourly_dataframe().breaches_dpgc.sum()
    m = DIPIModel(storage_share=1.0, **SMALL).run()
    assert m.hourly_dataframe().breaches_dpgc.sum() < without
    assert (m.storage_kwh[m.params.n_dpgc:] == 0).all()
    np.testing.assert_allclose(m.storage_kw[: m.params.n_dpgc],
                               0.25 * m.state.capacity_kw[: m.params.n_dpgc])


def test_batteries_are_mesa_agents_reading_the_columns():
    from dipi_abm.agents import DPGC, Storage

    m = DIPIModel(storage_share=0.5, **SMALL).run(5)
    batteries = m.agents_by_type[Storage]
    assert len(batteries) == 5
    for b in batteries:
        assert isinstance(b.owner, DPGC) and b.bus == b.owner.bus
        assert 0 <= b.soc_kwh <= b.energy_kwh and b.power_kw > 0


def test_money_is_still_conserved_with_storage():
    m = DIPIModel(storage_share=0.5, n_miners=1, **SMALL).run()
    total = m.state.balance.sum() + m.grid_company_balance + m.miner_balance.sum()
    start = m.params.initial_balance_yuan * (m.state.n + 1)
    assert total == pytest.approx(start + m.minted_yuan + m.endowed_yuan, rel=1e-12)


def test_bad_storage_parameters_are_refused():
    with pytest.raises(ConfigError, match="storage_efficiency"):
        DIPIModel(storage_efficiency=0.0)
    with pytest.raises(ConfigError, match="storage_share"):
        DIPIModel(storage_share=2.0)
