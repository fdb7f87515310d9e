-- Samples are identified by the exact weights (the snapshot's fingerprint), and every generation counts its
-- reasoning and answer tokens apart. Rows made before have NULL there.
ALTER TABLE model_snapshots ADD COLUMN IF NOT EXISTS fingerprint VARCHAR;
ALTER TABLE benchmark_generations ADD COLUMN IF NOT EXISTS reasoning_tokens INTEGER;
ALTER TABLE benchmark_generations ADD COLUMN IF NOT EXISTS answer_tokens INTEGER;
