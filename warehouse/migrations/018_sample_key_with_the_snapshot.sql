-- The identity of a variant's samples (assets.variants.sample_key) is worked out once, when its model snapshot is
-- recorded, and stored with it; every later step reads it from here. Rows made before keep NULL until the next
-- model_snapshot of their variant, which every run starts with.
ALTER TABLE model_snapshots ADD COLUMN IF NOT EXISTS config_hash VARCHAR;
