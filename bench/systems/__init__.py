"""Systems under test: each starts its own server on loopback and stops it by PID."""
