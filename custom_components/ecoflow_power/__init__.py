"""EcoFlow Power Management integration (placeholder; being built)."""
