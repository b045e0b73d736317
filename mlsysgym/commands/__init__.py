"""CLI sub-command modules (each exposes ``register(group)``)."""
