"""The physical world: the distribution grid and electrical distance (grid),
line flows and curtailment (flows), weather, output and load (weather)."""
