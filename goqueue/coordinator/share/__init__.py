"""Share groups (KIP-932) and the queue extensions: retry backoff, dead letters, TTL, FIFO."""
