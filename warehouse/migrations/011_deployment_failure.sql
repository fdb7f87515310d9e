-- A deployment that failed says why: the step's error, or, for a run that died (SIGKILL, out of memory, a
-- restart), what recovery found. Rows made before keep NULL.
ALTER TABLE engine_deployments ADD COLUMN IF NOT EXISTS failure VARCHAR;
