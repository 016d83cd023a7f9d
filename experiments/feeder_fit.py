"""Does the default population fit its feeder? (docs/model.md section 3)

Runs the default week for seeds 1, 2, 3 and prints the peak load, the DPGC and
rooftop PV capacity, the peak line loading (run maximum and hourly mean) and the
users' end-of-week balances (lowest, median).
"""

import numpy as np

from dipi_abm import DIPIModel

if __name__ == "__main__":
    for seed in (1, 2, 3):
        m = DIPIModel(seed=seed, ledger_detail="off").run()
        h, s, su = m.hourly_dataframe(), m.state, m.summary()
        users = s.kind == 1
        print(f"seed {seed}: peak load {h.load_kwh.max():.0f} kW, DPGC capacity "
              f"{s.capacity_kw[~users].sum():.0f} kW, rooftop PV {s.capacity_kw[users].sum():.0f}"
              f" kW, peak line loading {su['peak_line_loading']:.3f} (hourly mean "
              f"{h.peak_line_loading.mean():.3f}), user balance lowest "
              f"{s.balance[users].min():.0f} median {np.median(s.balance[users]):.0f} yuan")
