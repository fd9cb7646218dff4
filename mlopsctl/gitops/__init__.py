"""Git adapters: the pure tag grammar, ref reads and compare-and-swap writes, notes."""
