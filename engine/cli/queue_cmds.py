"""Commands of this group are added by their owning module (placeholder until it lands)."""
