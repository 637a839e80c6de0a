"""Model formulations of SPEC §2-3 (one module per backend)."""
