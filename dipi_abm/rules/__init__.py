"""The swappable rules of the hour, each a registry of named, pure functions.

matching and trade price (matching), tariffs and OGSC intake (tariffs),
contract settlement (settlement), credit (credit), consensus and the matching
quorum (consensus), learning (learning). A scenario picks one entry of each
registry by name.
"""
