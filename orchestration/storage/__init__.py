"""Where asset values live: `store` (atomic, durable writes to a folder or URL), `formats` (how each
type is written), `metadata` (what a stored value tells Dagster)."""
