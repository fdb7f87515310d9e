-- Requests are retried: each sample records how many requests it took and the last error retried past; the
-- cost rollup records the failed share of the load level it priced. Rows made before keep NULL.
ALTER TABLE benchmark_generations ADD COLUMN IF NOT EXISTS attempts INTEGER;
ALTER TABLE benchmark_generations ADD COLUMN IF NOT EXISTS last_error VARCHAR;
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS priced_failed_share DOUBLE;
