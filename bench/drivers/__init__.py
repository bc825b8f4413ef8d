"""Client drivers: one per (system, client library); each runs the same workloads."""
