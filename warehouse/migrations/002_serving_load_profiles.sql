-- serving_levels and serving_requests (closed-loop levels only, a few percentiles) were replaced by
-- serving_load_levels and serving_request_timings (per-profile levels, full distributions); the load test
-- can also replay a benchmark's prompts, recorded in `prompts`.
DROP TABLE IF EXISTS serving_levels;
DROP TABLE IF EXISTS serving_requests;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS prompts VARCHAR;
