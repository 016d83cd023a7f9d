"""The three hash-linked chains: SQLite store and verification (store), the
period records built from the hour's results (records), colored-coin credit
(coloredcoin)."""
