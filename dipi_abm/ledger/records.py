"""What the model writes on the three chains each period (docs/model.md section 7).

- DU1 (scheduling): the grid company's published prices and tariffs, and the
  executability result (curtailed volume).
- JY1 (transactions): the period's orders, contracts with their settlement,
  and every party's net transfer (what it paid or received this hour).
- LH1 (credit index blockchain): each credit update as a colored-coin
  transaction ([DIPI] eqs. 3-6), and the DU1 and JY1 Merkle roots of the period.

Period 0 is a genesis block on each chain, written by the grid company: the
parties' addresses, buses and starting balances and every member's public key
(JY1), their initial credit as colored coins *generated* (LH1), and the grid's
tariffs and the run record (DU1). Party rows index into the genesis table.
Each later period's three blocks are produced and signed by the node that won
the period's consensus (:mod:`dipi_abm.ledger.keys`).

From a ``full`` ledger a reader recomputes every party's node attributes
([DIPI] eq. 7): address, balance (starting balance + transfers + block rewards
of the blocks it produced) and credit (its latest colored-coin amount).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from ..hour import KPI_BY_NAME, HourRecord
from .coloredcoin import decode_credit_updates, encode_credit_updates
from .keys import AUTHORITY, KeyRing
from .store import Ledger

if TYPE_CHECKING:
    from ..model import DIPIModel

Records = dict[str, dict[str, np.ndarray]]


def genesis_records(model: DIPIModel) -> dict[str, Records]:
    s, p = model.state, model.params
    n_nodes = model.node_hash_power.size
    nodes = np.arange(n_nodes, dtype=np.int64)
    credit = np.concatenate([s.credit.credit, np.zeros(p.n_miners)])
    seq, value = encode_credit_updates(credit, np.ones(n_nodes, bool))
    balance = np.concatenate([s.balance, model.miner_balance])
    return {
        "DU1": {"tariff": {
            "retail_yuan_per_kwh": np.array([p.retail_yuan_per_kwh]),
            "feed_in_yuan_per_kwh": np.array([p.feed_in_yuan_per_kwh]),
            "wheeling_base_yuan_per_kwh": np.array([p.wheeling_base_yuan_per_kwh]),
            "wheeling_rate_yuan_per_kwh_ohm": np.array([p.wheeling_rate_yuan_per_kwh_ohm]),
            "block_reward_yuan": np.array([p.block_reward_yuan]),
            "n_buses": np.array([model.grid.n_buses], np.int64),
        }},
        "JY1": {"nodes": {
            "node": nodes,
            "address": np.array(model.addresses),
            "bus": np.concatenate([s.bus, np.full(p.n_miners, -1)]).astype(np.int64),
            "balance_yuan": balance,
            "hash_power": model.node_hash_power.copy(),
        }},
        "LH1": {"credit": {"node": nodes, "sequence": seq, "value": value}},
    }


def period_records(record: HourRecord, credit: NDArray[np.float64], hour: int
                   ) -> dict[str, Records]:
    """The period's records on DU1, JY1 and LH1, from the hour's phase results (before
    the block producer is known). ``credit`` is every party's credit after the update.
    Columns may be the phase results' own arrays: the ledger encodes (copies) them
    before the hour goes on."""
    c, book = record.cleared.contracts, record.orders.book
    price = record.cleared.price
    st = record.settlement.contracts
    transfer = record.settlement.party_transfer
    du1 = {"schedule": {
        "hour": np.array([hour], np.int64),
        "retail_yuan_per_kwh": np.array([record.schedule.retail]),
        "feed_in_yuan_per_kwh": np.array([record.schedule.feed_in]),
        "curtailed_kwh": np.array([KPI_BY_NAME["curtailed_kwh"].of(record)]),
        "line_curtailed_kwh": np.array([record.cleared.line_curtailed_kwh]),
        "quorum_committed": np.array([bool(record.cleared.quorum.committed)]),
    }}
    moved = np.flatnonzero(transfer != 0.0)
    jy1 = {
        "offers": {"node": _i64(book.seller_party), "kwh": book.seller_volume,
                   "price": book.seller_price, "time": _i64(book.seller_time)},
        "bids": {"node": _i64(book.buyer_party), "kwh": book.buyer_volume,
                 "price": book.buyer_price, "time": _i64(book.buyer_time)},
        "contracts": {"buyer": _i64(c.buyer), "seller": _i64(c.seller),
                      "kwh": c.volume, "price": price, "wheeling": c.wheeling,
                      "buyer_pays": st.buyer_pays, "seller_income": st.seller_income,
                      "grid_income": st.grid_income},
        "transfers": {"node": _i64(moved), "yuan": transfer[moved]},
    }
    flows = record.settlement.consequences
    if flows is not None:  # breach_policy payments (docs/model.md 6b); -1 is the grid company
        jy1["consequences"] = {"payer": _i64(flows.payer),
                               "payee": _i64(flows.payee), "yuan": flows.yuan,
                               "policy": np.array(flows.names + ("",))[flows.policy]}
    updated = record.credit.updated
    seq, value = encode_credit_updates(credit[updated], np.zeros(updated.size, bool))
    lh1 = {"credit": {"node": _i64(updated), "sequence": seq, "value": value}}
    return {"DU1": du1, "JY1": jy1, "LH1": lh1}


def _i64(a: NDArray) -> NDArray[np.int64]:
    """As int64, without a copy when it is one already (the ledger copies as it encodes)."""
    return a.astype(np.int64, copy=False)


#: From this many parties a period's records (about 100 bytes a party) take longer to
#: hash than handing them to the writer thread costs; below it the thread is a loss
#: (measured on 2 cores: 3,000 parties 0.95 ms per hour inline against 1.05 with the
#: thread, 5,000 parties 1.27 against 1.04, 10,000 parties 2.0 against 1.5).
LEDGER_THREAD_MIN_PARTIES = 4_000
LEDGER_THREAD_ENV = "DIPI_LEDGER_THREAD"


def ledger_thread(n_parties: int, hashed: bool) -> bool:
    """Whether the run's ledger appends on its writer thread (:mod:`.writer`): never
    under hashed POCA (its nonce race needs each period's root at once); otherwise from
    :data:`LEDGER_THREAD_MIN_PARTIES` parties, or as the environment variable
    ``DIPI_LEDGER_THREAD`` (``1`` or ``0``) says. The chains are the same either way."""
    if hashed:
        return False
    forced = os.environ.get(LEDGER_THREAD_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ConfigError(f"{LEDGER_THREAD_ENV} = {forced!r}: must be 1 (append the ledger "
                          "on a writer thread), 0 (inline) or unset (by the number of parties)")
    return n_parties >= LEDGER_THREAD_MIN_PARTIES


def open_run_ledger(model: DIPIModel, meta: Mapping[str, str]) -> tuple[Ledger, KeyRing]:
    """The run's chains with their signed genesis blocks, and the members' private keys.

    A key pair per node (``model.addresses``) and one for the grid company, which
    signs the genesis; ``meta`` (package, version, seed, parameters) is committed in
    DU1's genesis. Under hashed POCA the LH1 credit records are kept at every detail
    level, so a verifier can re-derive each block's target from them.
    """
    p = model.params
    keys = KeyRing.generate([AUTHORITY, *model.addresses])
    hashed = model.miners_set.hashed
    ledger = Ledger(p.ledger or None, detail=p.ledger_detail, meta=meta,
                    keep=("LH1/credit",) if hashed else (),
                    background=ledger_thread(model.state.n, hashed))
    ledger.write_genesis(genesis_records(model), keys.public_keys(), keys.signer(AUTHORITY))
    return ledger, keys


def node_attributes_from_ledger(ledger: Ledger) -> dict[str, NDArray[Any]]:
    """[DIPI] eq. 7 per node, recomputed from a ``full`` ledger: address, balance, credit."""
    genesis = ledger.read_records("JY1", 0)["nodes"]
    n = genesis["node"].size
    balance = genesis["balance_yuan"].astype(np.float64).copy()
    reward = float(ledger.read_records("DU1", 0)["tariff"]["block_reward_yuan"][0])
    address = genesis["address"]
    index_of = {a: i for i, a in enumerate(address.tolist())}
    credit = np.zeros(n)
    for block in ledger.blocks("LH1"):
        tx = ledger.read_records("LH1", block.index)["credit"]
        if tx["node"].size:
            _, _, c = decode_credit_updates(tx["sequence"], tx["value"])
            credit[tx["node"]] = c
        if block.index > 0:
            balance[index_of[block.producer]] += reward
    for block in ledger.blocks("JY1")[1:]:
        t = ledger.read_records("JY1", block.index)["transfers"]
        np.add.at(balance, t["node"], t["yuan"])
    return {"address": address, "balance": balance, "credit": credit}
