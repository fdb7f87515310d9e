-- Which engine actually served a variant, and why, where it is not the one the matrix asked for: a variant whose
-- quantization the preferred engine cannot run on this host is served by its declared fallback (assets.matrix.host).
-- A run that never started an engine (nothing on the host can serve the variant) is recorded as 'not_run'.
-- Rows made before keep NULL: the matrix's engine served them.
ALTER TABLE engine_deployments ADD COLUMN IF NOT EXISTS requested_engine VARCHAR;
ALTER TABLE engine_deployments ADD COLUMN IF NOT EXISTS engine_note VARCHAR;
ALTER TABLE evaluation_runs ADD COLUMN IF NOT EXISTS engine_note VARCHAR;
