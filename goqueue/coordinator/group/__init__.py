"""The group coordinator: consumer groups (classic and KIP-848) and their committed offsets."""
