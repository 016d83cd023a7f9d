"""Reproduce the [DER-CBC] settlement tests (Tables 1 -> 2; docs/model.md section 5).

Three contracts settled by the smart-contract rule with R = 0.657 and
F = 0.4 yuan/kWh, each from starting balances of 200 yuan for the buyer, the
seller and the grid company. Writes a CSV and prints the table.

    python experiments/settlement_tables.py --out results/settlement
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dipi_abm.results.files import atomic_write
from dipi_abm.rules.settlement import settle

R, F, START = 0.657, 0.4, 200.0
# p, q, w, b, g  ([DER-CBC] Table 1)
CASES = [
    (0.55, 200, 0.02, 200, 200),
    (0.54, 200, 0.02, 220, 200),
    (0.56, 200, 0.02, 180, 200),
]


def table() -> pd.DataFrame:
    p, q, w, b, g = (list(c) for c in zip(*CASES, strict=True))
    s = settle(p, q, w, b, g, R, F)
    df = pd.DataFrame({"price": p, "agreed_kwh": q, "wheeling": w, "consumed_kwh": b,
                       "generated_kwh": g, "buyer_pays": s.buyer_pays,
                       "seller_income": s.seller_income, "grid_income": s.grid_income})
    df["buyer_balance"] = START - df["buyer_pays"]
    df["seller_balance"] = START + df["seller_income"]
    df["grid_balance"] = START + df["grid_income"]
    df["cumulative_volume_kwh"] = df["consumed_kwh"].cumsum()
    return df.round(4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/settlement", help="output folder")
    args = ap.parse_args()
    df = table()
    path = Path(args.out) / "der_cbc_settlement.csv"
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    print(df.to_string(index=False))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
